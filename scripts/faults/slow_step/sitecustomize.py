"""Fault: every optimizer step takes about 20% longer (sleeps 0.2x the previous step's duration)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _hook import after_optimizer_import  # noqa: E402

SLOWDOWN = 0.20
_last: list[float] = []


def _patch(module) -> None:
    def slow(optimizer, args, kwargs) -> None:
        now = time.perf_counter()
        if _last:
            time.sleep(SLOWDOWN * (now - _last[-1]))
        _last[:] = [time.perf_counter()]

    module.register_optimizer_step_post_hook(slow)


after_optimizer_import(_patch)
