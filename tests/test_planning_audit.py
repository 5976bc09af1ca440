"""Audit of memory and scale planning (`bench estimate`, `bench recommend`, `bench scaling`): each test
pins a wrong answer or a crash found by using them as a user planning a GPU would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.cli.main import main
from bench.estimate.model import estimate_run, estimate_spec
from bench.recommend import recommend
from bench.recommend.scaling import scaling
from bench.suite import load_suite
from tests.synthetic_records import make_record
from tests.test_recommend import planted_set

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 256,
}


def _config():
    from transformers import AutoConfig

    fields = dict(TINY)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def _suite(tmp_path: Path, source: str, name: str, edit=None) -> Path:
    """A copy of a committed suite under another name, edited in place by `edit(data)`."""
    data = yaml.safe_load((ROOT / "suites" / source).read_text())
    data["name"] = name
    if edit is not None:
        edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _config_file(tmp_path: Path, fields: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fields))
    return path


def test_eight_bit_adam_state_is_what_bitsandbytes_keeps():
    """bitsandbytes 0.50 keeps float32 moments for tensors under 4,096 elements and an absmax per 256
    (not 2,048) elements for larger ones: estimated 331,416 bytes where it held 347,136."""
    import bitsandbytes
    import torch

    from bench.estimate.meta import optimizer_bytes

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 512), torch.nn.LayerNorm(512), torch.nn.Linear(512, 64, bias=False)
    )
    optimizer = bitsandbytes.optim.AdamW8bit(model.parameters(), lr=1e-3)
    model(torch.randn(4, 256)).sum().backward()
    optimizer.step()
    storages, held = set(), 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value) and value.untyped_storage().data_ptr() not in storages:
                storages.add(value.untyped_storage().data_ptr())  # the quantisation maps are shared
                held += value.numel() * value.element_size()
    assert optimizer_bytes(model, "adamw_bnb_8bit")[0] == held == 347_136


def test_a_multi_process_run_is_estimated_per_process():
    """budget.batch_size is global: with execution.processes 2 each rank trains half of it. The estimate
    was of the whole batch on one device (the activations of 8 sequences where a rank holds 4)."""
    spec = {
        "strategy": "lora",
        "label": "lora",
        "options": {},
        "model": {"dtype": "float32"},
        "budget": {"batch_size": 8},
        "processes": 2,
    }
    two = estimate_spec(spec, _config(), 16)
    one = estimate_spec({**spec, "processes": 1}, _config(), 16, batch_size=4)
    assert two.sequences == 4
    assert two.components.total() == one.components.total()


def test_batch_sizes_the_suite_could_not_run_are_left_out(tmp_path: Path, capsys):
    """RLOO scores whole groups: with num_generations 4 a batch of 1, 2 or 3 is refused by the run, yet
    `--batch-sizes 1,2,3` answered 3 for it."""

    def only_rlhf(data: dict) -> None:
        data["strategies"] = [s for s in data["strategies"] if "rlhf" in s]

    suite = _suite(tmp_path, "alignment.yaml", "rlhf-only", only_rlhf)
    config = _config_file(tmp_path, TINY)
    args = ["estimate", str(suite), "--model-config", str(config), "--device-memory", "1GiB", "--reserve", "0GiB"]
    out = tmp_path / "out.json"
    assert main([*args, "--batch-sizes", "1,2,3,4", "--json", str(out)]) == 0
    answers = json.loads(out.read_text())["largest_batches"]
    assert [(a["largest"], a["left_out"]) for a in answers] == [(4, [1, 2, 3]), (4, [1, 2, 3])]
    assert "batch 1, 2, 3 left out" in capsys.readouterr().out


def test_checkpointing_reaches_the_reward_model_and_its_doubled_batch_is_shown():
    """The reward trainer gets training.gradient_checkpointing too: the reward phase was estimated
    unchecked (the same total with checkpointing on), and shown at the policy's 8 sequences, not 16.
    Wide enough (512) that the reward model's full fine-tuning outweighs the policy's fused-head tile
    buffer (32,768 entries wide at any vocabulary), so the reward phase is the one shown."""
    options = {"lora": {"r": 8, "alpha": 16}, "num_generations": 4}
    config = _config()
    config.hidden_size, config.intermediate_size = 512, 1024
    plain, checkpointed = (
        estimate_run(
            config, dtype="float32", strategy="rlhf", options=options, batch_size=8, tokens=32,
            gradient_checkpointing=on,
        )
        for on in (False, True)
    )  # fmt: skip
    assert plain.components.phase == "reward" and plain.sequences == 16
    assert checkpointed.phases["reward"].activations < plain.phases["reward"].activations


def test_prefix_tuning_under_checkpointing_is_not_applicable():
    """bench.training.train skips prefix tuning with gradient checkpointing; the estimate answered a batch."""
    from bench.strategies import NotApplicable

    with pytest.raises(NotApplicable):
        estimate_run(
            _config(), dtype="float32", strategy="prefix", options={}, batch_size=2, tokens=16,
            gradient_checkpointing=True,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"model_type": "llama"}, "leaves out vocab_size, hidden_size, num_hidden_layers, num_attention_heads"),
        ({**TINY, "model_type": "lama"}, "model_type 'lama' is not a transformers model type (did you mean llama"),
        ({**TINY, "model_type": "t5"}, "cannot build a causal language model"),
        ({"hidden_size": 64}, "names no model_type"),
    ],
)
def test_model_configs_the_estimator_cannot_use_are_refused_in_one_line(tmp_path: Path, capsys, fields, said):
    """A config naming only its model_type was estimated at transformers' default shape (Llama-2-7B's:
    103 GiB for an 'unknown' model); an unknown type printed every type transformers knows (20k characters);
    a T5 config ended in a traceback; and the flag was named twice."""
    config = _config_file(tmp_path, fields)
    assert main(["estimate", str(ROOT / "suites" / "smoke.yaml"), "--model-config", str(config)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert said in line and len(line) < 400 and line.count("--model-config") == 1


def test_an_optimizer_the_estimator_does_not_know_is_one_line_and_exit_2(tmp_path: Path, capsys):
    suite = _suite(tmp_path, "smoke.yaml", "smoke-rmsprop", lambda data: data.update(training={"optimizer": "rmsprop"}))
    config = _config_file(tmp_path, TINY)
    assert main(["estimate", str(suite), "--model-config", str(config)]) == 2
    assert "training.optimizer: the estimator does not know 'rmsprop'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--device-memory", "1e-12GiB"], "--device-memory: '1e-12GiB' is no memory at all: give a size above 0"),
        (["--device-memory", "0GiB"], "--device-memory: '0GiB' is no memory at all: give a size above 0"),
        (["--device-memory", "1e30GiB"], "--device-memory: '1e30GiB' is more than any machine holds"),
        (["--device-memory", "24GiB", "--reserve", "30GiB"], "--reserve 30GiB leaves nothing of --device-memory"),
        (["--reserve", "100GiB"], "--reserve 100GiB is held beside --device-memory: give --device-memory too"),
    ],
)
def test_sizes_that_leave_no_memory_are_refused(tmp_path: Path, capsys, args, said):
    """A size below one byte was taken as 0 (every run 'NO'), a reserve above the device accepted."""
    config = _config_file(tmp_path, TINY)
    assert main(["estimate", str(ROOT / "suites" / "smoke.yaml"), "--model-config", str(config), *args]) == 2
    assert said in capsys.readouterr().err


def test_json_says_what_the_table_says(tmp_path: Path, capsys):
    """Each estimate's verdict and the token source were in the table only; a device under 1 GiB was
    printed as '0.0 GiB'."""
    config = _config_file(tmp_path, TINY)
    out = tmp_path / "estimate.json"
    args = ["estimate", str(ROOT / "suites" / "smoke.yaml"), "--model-config", str(config), "--json", str(out)]
    assert main([*args, "--device-memory", "1MiB", "--reserve", "0MiB"]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["tokens_source"] == "seq_len (another model's config)"
    for estimate in data["estimates"]:
        assert estimate["fits"] == (estimate["total_bytes"] <= 2**20)
        verdict = "yes" if estimate["fits"] else "NO"
        row = next(line for line in printed.splitlines() if line.startswith(estimate["label"] + " "))
        assert row.split()[1] == str(estimate["sequences"]) and row.split()[-1] == verdict
    assert "<= 1.0 MiB" in printed and "0.0 GiB" not in printed


def test_recommend_holds_the_estimate_with_its_reserve_as_estimate_does(tmp_path: Path):
    """`bench estimate` adds a 2 GiB reserve to the estimate; `bench recommend --model-config` did not,
    so a strategy it recommended for a 2.05 GiB device was one `bench estimate` says does not fit."""
    config = _config_file(
        tmp_path, {**TINY, "hidden_size": 512, "intermediate_size": 1024, "num_attention_heads": 8, "vocab_size": 8192}
    )
    records = planted_set(("lora",), parameters=88_128)
    memory = int(2.05 * 2**30)
    rec = recommend(records, memory, model_config=config)
    lora = rec.candidate("lora")
    assert lora.estimate.total_mib < 2.05 * 1024 < lora.estimate.total_mib + 2048  # fits only without the reserve
    assert rec.choice is None and lora.estimate.fits is False
    assert "with 2 GiB reserve on your model (estimate) > 2.05 GiB" in rec.rejected["lora"]
    assert recommend(records, memory, model_config=config, reserve_bytes=0).choice == "lora"


def _run(seed: int, world: int, tokens_per_s: float, cpu: str = "Test CPU"):
    record = make_record("full", seed, cpu=cpu, values={"train.tokens_per_s": tokens_per_s})
    budget = {**record.budget, "world_size": world, "steps_done": 60, "tokens_seen": 1000}
    spec = {**record.spec, "processes": world}
    return record.model_copy(update={"budget": budget, "spec": spec, "run_id": f"full-{seed}-{world}-{cpu}"})


def test_scaling_keeps_process_counts_and_machines_apart():
    """MANY holding 2- and 4-process runs was pooled into one '4 processes' row; ONE and MANY from
    different machines gave an efficiency from tokens/s that do not compare."""
    one = [_run(seed, 1, 1000.0) for seed in range(2)]
    many = [_run(seed, 2, 1800.0) for seed in range(2)] + [_run(seed, 4, 3200.0) for seed in range(2)]
    rows = scaling(one, many)
    assert [(row.processes, row.efficiency) for row in rows] == [(2, pytest.approx(0.9)), (4, pytest.approx(0.8))]
    (row,) = scaling(one, [_run(seed, 2, 1800.0, cpu="Other CPU") for seed in range(2)])
    assert row.efficiency is None and "different kinds of machine" in row.note


def test_dpo_on_a_preference_file_plans_at_seq_len():
    """The task's lengths say nothing of a preference file's rows: DPO on one was planned at the task's
    longest example (5 tokens of cipher) whatever the file held; now at seq_len, the worst step."""
    from bench.estimate.suite import planning_tokens, suite_specs

    specs = suite_specs(load_suite(ROOT / "suites" / "alignment-chat.yaml"))
    assert planning_tokens(specs["dpo"], lambda: [5], None) == 32
    assert planning_tokens(specs["sft-lora"], lambda: [5], None) == 5


def _held_state(name: str, dtype) -> tuple[int, int]:
    """(bytes the optimizer holds after one step, bytes the estimator says) on three layers: 8,192 and
    4,096 elements (bitsandbytes quantises them) and 2,048 (it keeps those in float32)."""
    import warnings

    import bitsandbytes as bnb
    import torch
    from transformers.optimization import Adafactor

    from bench.estimate.meta import optimizer_bytes
    from bench.measure.components import count_optimizer_state

    makers = {
        "paged_adamw_32bit": lambda ps: bnb.optim.PagedAdamW32bit(ps, lr=1e-3),
        "lion_8bit": lambda ps: bnb.optim.Lion8bit(ps, lr=1e-3),
        "paged_lion_8bit": lambda ps: bnb.optim.PagedLion8bit(ps, lr=1e-3),
        "lion_32bit": lambda ps: bnb.optim.Lion32bit(ps, lr=1e-3),
        "adafactor": lambda ps: Adafactor(ps, lr=1e-3, scale_parameter=False, relative_step=False),
        "adamw_torch": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
    }
    torch.manual_seed(0)
    layers = [torch.nn.Linear(128, 64), torch.nn.Linear(64, 32), torch.nn.Linear(64, 64)]
    model = torch.nn.Sequential(*layers).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paged optimizers fall back to plain ones on CPU, and say so
        optimizer = makers[name](model.parameters())
        hidden = layers[1](layers[0](torch.randn(2, 128, dtype=dtype)))
        layers[2](torch.cat([hidden, hidden], -1)).sum().backward()
        optimizer.step()
    return count_optimizer_state(optimizer), optimizer_bytes(model, name)[0]


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "name", ["paged_adamw_32bit", "lion_8bit", "paged_lion_8bit", "lion_32bit", "adafactor", "adamw_torch"]
)
def test_optimizer_state_of_lion_adafactor_and_32_bit_paged_is_estimated_to_the_byte(name: str, dtype_name: str):
    """Before, bench estimate refused these optimizers (the suite schema accepts them): bitsandbytes' 32-bit
    ones keep float32 moments whatever the parameters' dtype, Lion one moment, Adafactor a row and a column
    per matrix."""
    import torch

    held, estimated = _held_state(name, getattr(torch, dtype_name))
    assert held > 0 and estimated == held


def test_a_config_folder_without_a_tokenizer_is_said_in_one_line(tmp_path: Path):
    """transformers' 6-line advice to install sentencepiece or tiktoken was printed for a config-only folder."""
    from bench.estimate.suite import _why_not
    from bench.spec import ModelSpec

    folder = tmp_path / "config-only"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    said = _why_not(
        ValueError("Couldn't instantiate the backend tokenizer from one of:\n(1) ..."), ModelSpec(config=str(folder))
    )
    assert said == f"{folder} holds no tokenizer file (tokenizer.json, tokenizer.model, vocab.json, tiktoken.model)"
    (folder / "tokenizer.json").write_text("{}")
    said = _why_not(ValueError("broken file\nmore"), ModelSpec(config=str(folder)))
    assert said == "ValueError: broken file"


def test_a_scaling_row_without_clean_timing_says_why_it_has_no_efficiency():
    """Every 2-process run contaminated: the row read '- ... yes (1 vs 0 uncontaminated runs)', the reason left
    to be guessed."""
    one = [_run(seed, 1, 1000.0) for seed in range(2)]
    many = [_run(seed, 2, 1800.0) for seed in range(2)]
    many = [
        r.model_copy(update={"timing_quality": r.timing_quality.model_copy(update={"contaminated": True})})
        for r in many
    ]
    (row,) = scaling(one, many)
    assert row.efficiency is None
    assert row.note == (
        "2 vs 0 uncontaminated runs; no efficiency: every run of MANY had its timing contaminated or unmeasured"
    )
