"""Fault: every optimizer step uses a tenth of the learning rate it was given (it learns less).
$BENCH_FAULT_LR_FACTOR sets another factor (half_lr sets 0.5)."""

import os

from _hook import after_optimizer_import, targeted

FACTOR = float(os.environ.get("BENCH_FAULT_LR_FACTOR", "0.1"))


def _patch(module) -> None:
    def weaken(optimizer, args, kwargs) -> None:
        if not targeted("weak_lr"):
            return
        optimizer._bench_fault_lrs = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * FACTOR

    def restore(optimizer, args, kwargs) -> None:
        if not hasattr(optimizer, "_bench_fault_lrs"):
            return
        for group, rate in zip(optimizer.param_groups, optimizer._bench_fault_lrs):
            group["lr"] = rate

    module.register_optimizer_step_pre_hook(weaken)
    module.register_optimizer_step_post_hook(restore)


after_optimizer_import(_patch)
