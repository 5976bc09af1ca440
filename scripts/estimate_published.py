"""bench.estimate.model against published GPU memory measurements that state batch and sequence length
(docs/memory.md, "Published measurements", redoes this table; issue 27 item 1).

    python scripts/estimate_published.py            # the markdown table, then median and max |error|
    python scripts/estimate_published.py --json OUT # the rows as JSON as well

Sources (each row names its own):
  LitGPT  tutorials/resource-tables.md (updated 2023-10-20, commit 8641822, A100-SXM4-40GB,
          PyTorch 2.1, bitsandbytes 0.41.1): `finetune/lora.py`, bf16-true, LoRA r=8 alpha=16
          dropout 0.05 on query and value, AdamW; "Max GPU RAM" is torch.cuda.max_memory_allocated()
          in GB (1e9). The longest Alpaca example is forced into the first batch and batches pad to
          their longest, so a step holds micro-batch x that length: phi-1.5 1,044, StableLM Alpha
          1,034, Llama 2 1,304 tokens (as the page states). QLoRA rows: `--quantize bnb.nf4`
          (`-dq`: double quantisation). The trainable-parameter counts the page gives are the
          estimate's too (1,572,864 / 2,097,152 / 4,194,304 / 6,553,600).
  LitGPT  config_hub/finetune/README.md (A10G, Alpaca2k, bf16-true): `max_seq_length: 512` caps
          every example, so the worst step is micro-batch x 512; LoRA settings from each config's
          YAML (mistral-7b/lora.yaml: r=32, alpha=16, dropout 0.05, query and value; gemma-2b/lora.yaml:
          r=8, alpha=16, dropout 0.1, every linear layer and the head).
  torchtune  README, "Optimization flags", row "+ Packed Dataset": full fine-tuning, Llama 3.2 3B,
          bf16, batch 2, packed to 4,096 tokens, AdamW, no activation checkpointing, A100, 60.0 GiB
          "Peak Memory Active".

LitGPT and torchtune run their own model code, not transformers': fused query-key-value
projections, LitGPT's LoRA kept in bf16 (PEFT keeps adapters in fp32 and casts each adapted
layer's input to fp32), their own loss. A row that misses says so; the estimator is not tuned to a
publisher's implementation: scripts/published_shapes_gpu.py measures transformers itself at the
same shapes (issue 27 item 2), on a GPU or on a CPU. Its committed measurements
(results/published-shapes/<machine>/published-shapes.json) stand in the table beside the published
figure, as "transformers measured", with the estimate's error against them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.estimate.model import config_from_file, estimate_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "suites" / "model-configs"
MEASURED = ROOT / "results" / "published-shapes"
GB, GIB = 1e9, 2**30
LITGPT = "LitGPT resource-tables.md (A100 40GB)"
HUB = "LitGPT config_hub/finetune/README.md (A10G)"
QV = {"r": 8, "alpha": 16, "dropout": 0.05}


# What the publisher's code holds that transformers' does not, or the reverse: a row beyond 10% states it
LOSS = "LitGPT's chunked cross-entropy never holds float32 logit gradients (transformers' loss does: the last term)"
GELU = "LitGPT's phi-1.5 runs a fused GELU, transformers' gelu_new keeps 3 more MLP-wide tensors a layer"
FLOAT32 = (
    "PEFT's prepare_model_for_kbit_training casts what stays unquantised to float32, so activations are float32 "
    "(LitGPT's BitsandbytesPrecision keeps bf16)"
)


def _litgpt(config: str, name: str, tokens: int, batch: int, quantize: str | None, published_gb: float) -> dict:
    """One row of LitGPT's single-GPU LoRA table: LoRA (or QLoRA) r=8 on query and value."""
    targets = ["query_key_value"] if config.startswith("stablelm") else ["q_proj", "v_proj"]
    options: dict[str, Any] = {**QV, "target_modules": targets}
    strategy = "lora"
    if quantize:
        strategy = "qlora"
        options |= {"bits": 4, "quant_type": "nf4", "double_quant": quantize == "nf4-dq", "compute_dtype": "bfloat16"}
    method = f"QLoRA ({quantize})" if quantize else "LoRA"
    # LitGPT's phi-1.5 applies GELU as one fused op; transformers' Phi composes gelu_new from six
    # elementwise ops, and autograd keeps three more MLP-wide tensors per layer (measured on meta)
    publisher = {"hidden_act": "gelu_pytorch_tanh"} if config == "phi-1.5" else None
    return {
        "publisher_config": publisher,
        "source": f"{LITGPT}: {name} {method}, micro-batch {batch}",
        "config": config,
        "strategy": strategy,
        "options": options,
        "batch": batch,
        "tokens": tokens,
        "published_bytes": published_gb * GB,
        "published": f"{published_gb:.2f} GB",
        "implementation": "LitGPT's own model and LoRA (fused qkv; adapters in bf16)",
        "differs": "; ".join([*([GELU] if publisher else []), *([FLOAT32] if quantize else []), LOSS]),
    }


PUBLISHED: list[dict[str, Any]] = [
    _litgpt("phi-1.5", "phi-1.5", 1044, 1, None, 4.82),
    _litgpt("phi-1.5", "phi-1.5", 1044, 1, "nf4", 3.78),
    _litgpt("phi-1.5", "phi-1.5", 1044, 1, "nf4-dq", 3.72),
    _litgpt("phi-1.5", "phi-1.5", 1044, 2, None, 6.76),
    _litgpt("phi-1.5", "phi-1.5", 1044, 4, None, 10.68),
    _litgpt("stablelm-base-alpha-3b", "StableLM Alpha 3B", 1034, 1, None, 9.69),
    _litgpt("stablelm-base-alpha-3b", "StableLM Alpha 3B", 1034, 1, "nf4", 6.35),
    _litgpt("stablelm-base-alpha-3b", "StableLM Alpha 3B", 1034, 1, "nf4-dq", 6.19),
    _litgpt("stablelm-base-alpha-3b", "StableLM Alpha 3B", 1034, 2, None, 12.10),
    _litgpt("stablelm-base-alpha-3b", "StableLM Alpha 3B", 1034, 4, None, 16.92),
    _litgpt("llama-2-7b", "Llama 2 7B", 1304, 1, None, 21.30),
    _litgpt("llama-2-7b", "Llama 2 7B", 1304, 1, "nf4", 14.14),
    _litgpt("llama-2-7b", "Llama 2 7B", 1304, 1, "nf4-dq", 13.84),
    _litgpt("llama-2-7b", "Llama 2 7B", 1304, 2, None, 29.07),
    _litgpt("llama-2-13b", "Llama 2 13B", 1304, 1, None, 38.12),
    _litgpt("llama-2-13b", "Llama 2 13B", 1304, 1, "nf4", 23.14),
    _litgpt("llama-2-13b", "Llama 2 13B", 1304, 1, "nf4-dq", 22.55),
    {
        "source": f"{HUB}: mistral-7b/lora.yaml, micro-batch 2",
        "config": "mistral-7b",
        "strategy": "lora",
        "options": {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "batch": 2,
        "tokens": 512,
        "published_bytes": 20.66 * GB,
        "published": "20.66 GB",
        "implementation": "LitGPT's own model and LoRA (fused qkv; adapters in bf16)",
        "differs": LOSS,
        "publisher_config": None,
    },
    {
        "source": f"{HUB}: gemma-2b/lora.yaml, micro-batch 2",
        "config": "gemma-2b",
        "strategy": "lora",
        "options": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": "all-linear"},
        "batch": 2,
        "tokens": 512,
        "published_bytes": 12.62 * GB,
        "published": "12.62 GB",
        "implementation": "LitGPT's own model and LoRA; the head's LoRA (lora_head) is not in PEFT's all-linear",
        "differs": f"{LOSS}: 1.95 GiB over Gemma's 256,000-token vocabulary",
        "publisher_config": None,
    },
    {
        "source": "torchtune README, Optimization flags, '+ Packed Dataset' (A100)",
        "config": "llama-3.2-3b",
        "strategy": "full",
        "options": {},
        "batch": 2,
        "tokens": 4096,
        "published_bytes": 60.0 * GIB,
        "published": "60.0 GiB (peak memory active)",
        "implementation": "torchtune's own Llama and loss",
        "differs": "torchtune's own Llama and loss",
        "publisher_config": None,
    },
]


def _estimate(case: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    config = config_from_file(CONFIGS / case["config"])
    for name, value in (overrides or {}).items():
        setattr(config, name, value)
    return estimate_run(
        config,
        dtype="bfloat16",
        strategy=case["strategy"],
        options=case["options"],
        batch_size=case["batch"],
        tokens=case["tokens"],
    )


def measurements(folder: Path = MEASURED) -> list[dict[str, Any]]:
    """Every full-size row scripts/published_shapes_gpu.py measured, with its machine (the folder)."""
    rows = []
    for path in sorted(folder.glob("*/published-shapes.json")):
        for row in json.loads(path.read_text("utf-8")):
            if not row.get("tiny") and row.get("peak_without_leftover_bytes"):
                rows.append({**row, "machine": path.parent.name})
    return rows


def measured_for(case: dict[str, Any], measured: list[dict[str, Any]], overrides: dict | None = None) -> dict | None:
    """The measurement of transformers at exactly the case's shape, options and config changes."""
    for row in measured:
        same = all(row[key] == case[key] for key in ("config", "strategy", "batch", "tokens", "options"))
        if same and (row.get("overrides") or {}) == (overrides or {}):
            return row
    return None


def estimate_row(case: dict[str, Any], measured: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The estimate of transformers' model at the row's shape; where the publisher's model differs in
    a way a config can say (phi-1.5's GELU), that variant's error beside it, never in the summary.
    With `measured` (measurements()), transformers' own peak at the shape, where it was measured."""
    components = _estimate(case).components
    publisher = case.get("publisher_config")
    # the publisher's variant: its model change, and its loss, which never holds float32 gradients over
    # all logits (LitGPT's chunked cross-entropy): the estimate's total, without the loss's gradients
    variant = (_estimate(case, publisher).components.total() or 0) if publisher else None
    weights = (components.weights_trainable or 0) + (components.weights_frozen or 0)
    peak = components.peak() or 0
    return {
        **{
            key: case[key]
            for key in ("source", "config", "strategy", "batch", "tokens", "published", "implementation", "differs")
        },
        "weights": weights,
        "gradients": components.gradients,
        "optimizer": components.optimizer,
        "activations": components.activations,
        "loss_gradients": peak - (components.total() or 0),  # beyond the parameter gradients (Components.peak)
        "estimate_bytes": peak,
        "published_bytes": case["published_bytes"],
        "error_percent": 100 * (peak / case["published_bytes"] - 1),
        "publisher_config": publisher,
        "publisher_error_percent": None if variant is None else 100 * (variant / case["published_bytes"] - 1),
        **_measured_fields(case, peak, measured or []),
    }


def fewer_layers(case: dict[str, Any], measured: list[dict[str, Any]]) -> dict | None:
    """Where the whole shape was not measured (more than the machine held), the measurement of the same
    shape with the most layers, its only config change `num_hidden_layers`."""
    cut = [
        row
        for row in measured
        if set(row.get("overrides") or {}) == {"num_hidden_layers"}
        and measured_for(case, [row], {"num_hidden_layers": row["overrides"]["num_hidden_layers"]})
    ]
    return max(cut, key=lambda row: row["overrides"]["num_hidden_layers"], default=None)


def _measured_fields(case: dict[str, Any], estimate: int, measured: list[dict[str, Any]]) -> dict[str, Any]:
    found = measured_for(case, measured)
    layers = whole = None
    if found is None and (found := fewer_layers(case, measured)):
        layers = found["overrides"]
        estimate = _estimate(case, layers).components.peak() or 0  # the estimate of what was measured
        whole = config_from_file(CONFIGS / case["config"]).num_hidden_layers
    publisher = case.get("publisher_config")
    variant = measured_for(case, measured, publisher) if publisher else None
    peak = found["peak_without_leftover_bytes"] if found else None
    return {
        "measured_bytes": peak,
        "measured_on": found["machine"] if found else None,
        "measured_layers": None if layers is None else layers["num_hidden_layers"],
        "layers": whole,  # the whole shape's, beside a measurement with fewer
        "estimate_vs_measured_percent": None if peak is None else 100 * (estimate / peak - 1),
        "publisher_measured_bytes": variant["peak_without_leftover_bytes"] if variant else None,
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| measurement | shape | estimate (GiB): weights + gradients + optimizer + activations + loss gradients "
        "| published | error "
        "| transformers measured (GiB) | estimate vs measured | why not within 10% of the published figure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        parts = " + ".join(
            f"{row[name] / GIB:.2f}" for name in ("weights", "gradients", "optimizer", "activations", "loss_gradients")
        )
        shape = f"{row['batch']} x {row['tokens']:,}"
        published = f"{row['published']} = {row['published_bytes'] / GIB:.2f} GiB"
        estimate = f"{parts} = **{row['estimate_bytes'] / GIB:.2f}**"
        error = f"{row['error_percent']:+.1f}%"
        if row["publisher_error_percent"] is not None:
            error += f" ({row['publisher_error_percent']:+.1f}% with {_changes(row)} and no float32 loss gradients)"
        why = row["differs"] if abs(row["error_percent"]) > 10 else "-"
        lines.append(
            f"| {row['source']} | {shape} | {estimate} | {published} | {error} | {_measured_cells(row)} | {why} |"
        )
    errors = [abs(row["error_percent"]) for row in rows]
    lines.append("")
    lines.append(
        f"{len(rows)} rows: median |error| {statistics.median(errors):.1f}%, max {max(errors):.1f}%; "
        f"within 10%: {sum(e <= 10 for e in errors)}, within 20%: {sum(e <= 20 for e in errors)}"
    )
    lines += _against_measured(rows)
    return "\n".join(lines)


def _against_measured(rows: list[dict[str, Any]]) -> list[str]:
    """The estimate against transformers measured: whole shapes, then shapes measured with fewer layers."""
    lines = []
    for label, picked in (
        ("", [row for row in rows if row.get("measured_bytes") and not row.get("measured_layers")]),
        (" with fewer layers", [row for row in rows if row.get("measured_layers")]),
    ):
        if picked:
            against = [abs(row["estimate_vs_measured_percent"]) for row in picked]
            machines = sorted({row["measured_on"] for row in picked})
            lines.append(
                f"Against transformers measured{label} ({len(against)} rows, {', '.join(machines)}): median |error| "
                f"{statistics.median(against):.1f}%, max {max(against):.1f}%"
            )
    return lines


def _changes(row: dict[str, Any]) -> str:
    """The publisher's config changes, as KEY=VALUE."""
    return ", ".join(f"{key}={value}" for key, value in row["publisher_config"].items())


def _measured_cells(row: dict[str, Any]) -> str:
    if not row.get("measured_bytes"):
        return "not measured | -"
    layers = f" at {row['measured_layers']} of {row['layers']} layers" if row.get("measured_layers") else ""
    cell = f"{row['measured_bytes'] / GIB:.2f}{layers} ({row['measured_on']})"
    if row.get("publisher_measured_bytes"):
        cell += f"; {row['publisher_measured_bytes'] / GIB:.2f} with {_changes(row)}"
    return f"{cell} | {row['estimate_vs_measured_percent']:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    measured = measurements()
    rows = [estimate_row(case, measured) for case in PUBLISHED]
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
