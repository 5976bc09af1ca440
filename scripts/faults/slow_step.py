"""Fault: every optimizer step takes 20% longer: after each step, the process computes (busy-waits)
for a fifth of the time the step took. Busy-waiting, not sleeping: a sleep's wake-up latency on a
virtual machine adds a fixed ~0.1-0.5 ms per step, which made a "20%" fault cost 29% on 4 ms steps."""

import time

from _hook import after_optimizer_import, targeted

SLOWDOWN = 0.20
_last: list[float] = []


def _patch(module) -> None:
    def slow(optimizer, args, kwargs) -> None:
        if not targeted("slow_step"):
            return
        now = time.perf_counter()
        if _last:
            until = now + SLOWDOWN * (now - _last[-1])
            while time.perf_counter() < until:
                pass
        _last[:] = [time.perf_counter()]

    module.register_optimizer_step_post_hook(slow)


after_optimizer_import(_patch)
