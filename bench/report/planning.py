"""The report's planning sections: training memory by component (with the estimate beside it), and
what `bench recommend` says for common device sizes. Reads records only; never imports torch."""

from __future__ import annotations

from typing import Any

from bench.analysis import selection, stats
from bench.records.results import RunResult, learned_task
from bench.report import charts

COMPONENT_COLORS = {  # record name -> colour; COMPONENT_NAMES are what readers see
    "weights_frozen": "#9ecae1",
    "weights_trainable": "#3182bd",
    "gradients": "#fd8d3c",
    "optimizer": "#e6550d",
    "activations": "#74c476",
    "other_models": "#9e9ac8",
    "generation_cache": "#bcbddc",
}
COMPONENT_NAMES = {
    "weights_frozen": "frozen weights",
    "weights_trainable": "trained weights",
    "gradients": "gradients",
    "optimizer": "optimizer",
    "activations": "activations",
    "other_models": "other models held",
    "generation_cache": "generation cache",
}
DEVICE_FIGURES = ("cuda_allocated_peak_mib", "cuda_reserved_peak_mib", "nvml_process_mib", "host_peak_mib")


def memory_section(records: list[RunResult]) -> dict[str, Any] | None:
    """Training memory by component per strategy (mean over seeds, MiB), the estimate beside it and
    its error, and the device-level figures; None when no record counted its components."""
    keyed = selection.keyed_records([r for r in records if r.status == "ok" and r.memory and r.memory.get("measured")])
    if not keyed:
        return None
    rows = []
    for strategy, runs in sorted(keyed.items()):
        measured = [r.memory["measured"] for r in runs]
        estimates = [r.memory["estimate"] for r in runs if r.memory.get("estimate")]
        components = {
            name: stats.mean([m["bytes"][name] / 2**20 for m in measured if m["bytes"].get(name) is not None])
            for name in COMPONENT_COLORS
        }
        total = stats.mean([m["total_bytes"] / 2**20 for m in measured if m.get("total_bytes") is not None])
        estimate = stats.mean([e["total_bytes"] / 2**20 for e in estimates if e.get("total_bytes") is not None])
        errors = [
            r.memory["estimate_error_percent"] for r in runs if r.memory.get("estimate_error_percent") is not None
        ]
        device = {
            name: stats.mean([v for r in runs if (v := r.value(f"memory.train.{name}")) is not None])
            for name in DEVICE_FIGURES
        }
        rows.append(
            {
                "strategy": strategy,
                "components": components,
                "total": total,
                "estimate": estimate,
                "error": stats.mean(errors),
                "device": device,
                "dtypes": measured[0].get("weights_by_dtype") or {},
                "reason": next(
                    (r.memory.get("estimate_reason") for r in runs if r.memory.get("estimate_reason")), None
                ),
            }
        )
    strategies = [row["strategy"] for row in rows]
    # records from before a component was counted (other models, generation cache) leave it out
    counted = [name for name in COMPONENT_COLORS if any(row["components"][name] is not None for row in rows)]
    parts = {COMPONENT_NAMES[name]: [row["components"][name] for row in rows] for name in counted}
    title = "Training memory by component (MiB, mean over seeds; ◇ = estimate before training)"
    chart = charts.stacked(
        "memory-components",
        title,
        strategies,
        parts,
        "MiB",
        {COMPONENT_NAMES[name]: COMPONENT_COLORS[name] for name in counted},
        {"estimate": [row["estimate"] for row in rows]},
    )
    shown = [name for name in DEVICE_FIGURES if any(row["device"][name] is not None for row in rows)]
    names = {name: COMPONENT_NAMES[name] for name in counted}
    return {"rows": rows, "chart": chart, "title": title, "components": names, "device": shown}


# Device sizes the report recommends for (common GPUs: 8 GiB consumer, 24 GiB workstation, 80 GiB
# data-centre); `bench recommend --memory` answers for any other.
RECOMMEND_FOR_GIB = (8, 24, 80)


def recommendation_section(records: list[RunResult]) -> list[dict[str, Any]]:
    """`bench recommend` for each size in RECOMMEND_FOR_GIB (objective: accuracy, else throughput), over every
    record so that a strategy whose runs all failed is listed as rejected with why. Where no run measured GPU
    memory, `caveat` says so (shown above the table): a CPU process's figure is no GPU fit."""
    from bench.recommend import recommend
    from bench.recommend.formatting import gpu_memory_caveat

    ok = [r for r in records if r.status == "ok"]
    if not ok:
        return []
    task = learned_task(ok)
    has_accuracy = any(r.value(f"accuracy.{task}") is not None for r in ok)
    objective = "accuracy" if has_accuracy else "throughput"
    out = []
    for gib in RECOMMEND_FOR_GIB:
        result = recommend(records, gib * 2**30, objective=objective)
        caveat = gpu_memory_caveat(result.candidates)
        out.append(
            {
                "memory": f"{gib} GiB",
                "objective": objective,
                "choice": result.choice,
                "reason": result.reason,
                "pareto": result.pareto,
                "rejected": result.rejected,
                "dominated": result.dominated,
                "notes": [note for note in result.notes if note != caveat],  # the caveat is said once, above
                "caveat": caveat,
            }
        )
    return out
