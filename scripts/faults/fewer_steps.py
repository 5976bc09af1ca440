"""Fault: 40% fewer training steps. The run still takes its budgeted steps (the spec and run id are
unchanged), but from 60% of them on every optimizer step has a learning rate of 0, so the weights
stop where a run of 60% of the budget would have stopped them."""

from _hook import after_optimizer_import, run_spec, targeted

KEPT = 0.6
_steps = [0]


def _patch(module) -> None:
    def stop(optimizer, args, kwargs) -> None:
        if not targeted("fewer_steps"):
            return
        _steps[0] += 1
        budget = (run_spec().get("budget") or {}).get("steps") or 0
        if budget and _steps[0] > KEPT * budget:
            optimizer._bench_fault_stopped = [group["lr"] for group in optimizer.param_groups]
            for group in optimizer.param_groups:
                group["lr"] = 0.0

    def restore(optimizer, args, kwargs) -> None:
        for group, rate in zip(optimizer.param_groups, getattr(optimizer, "_bench_fault_stopped", [])):
            group["lr"] = rate

    module.register_optimizer_step_pre_hook(stop)
    module.register_optimizer_step_post_hook(restore)


after_optimizer_import(_patch)
