"""What users read from bench.measure that the other tests let change unnoticed (a mutation audit, second part of
tests/test_mutants_components.py: each test fails on a mutant that the measurements' own tests passed): the counted
components' total and peak, held models, quantised weights, key/value caches and saved tensors
(bench.measure.components), and a run's memory limit and out-of-memory reasons (bench.measure.limits). None trains."""

from __future__ import annotations

from typing import Any

import pytest

# the counted components (bench.measure.components)

# bytes beside the activations: 100 trained weights, 200 of optimizer state, 300 of frozen models held
HELD = {"weights_trainable": 100, "weights_frozen": 0, "optimizer": 200, "other_models": 300}


def _components(**parts: int | None) -> Any:
    from bench.measure.components import Components

    return Components(**{**HELD, "gradients": 100, "generation_cache": 0, **parts})


def test_the_total_holds_the_generation_cache_or_the_activations_and_is_unknown_with_a_component_missing():
    assert _components(activations=40, generation_cache=70).total() == 700 + 70
    assert _components(activations=40, generation_cache=None).total() is None
    assert _components(activations=40, loss_gradients=None).peak() == 700 + 40  # no loss's gradients: the total
    assert _components(activations=None, loss_gradients=8).peak() is None


def test_backward_ends_holding_every_gradient_and_a_tied_embeddings_two_more_buffers():
    """The end of backward (100 of gradients + 60 transient) outweighs its start (40 + 8): 600 + 160, not 600 + 48;
    the cache (70), gone before the training forward, is held against neither."""
    parts = _components(activations=40, loss_gradients=8, gradients_transient=60)
    assert parts.peak() == 600 + 100 + 60
    assert parts.mib()["peak"] == 760 / 2**20 and parts.mib()["total"] == 740 / 2**20
    assert _components(activations=40, generation_cache=70, loss_gradients=8, gradients_transient=60).peak() == 760


def test_a_checkpointed_step_that_generates_holds_the_cache_against_the_kept_inputs():
    """RLHF's policy under checkpointing: the generation cache (500), dropped before the training forward, outweighs
    the kept inputs (12) with the loss's gradients (8), a layer's backward (100 + 8 + 2) and the end of backward
    (100); without checkpointing the step would hold the cache and the loss's gradients (508) at least."""
    parts = _components(
        activations=20, activations_at_loss=12, activations_without_checkpointing=44, generation_cache=500,
        loss_gradients=8,
    )  # fmt: skip
    assert parts.total() == 700 + 500
    assert parts.peak() == 600 + 500


def test_held_models_count_the_storage_they_share_with_the_trained_model_or_each_other_once():
    import torch

    from bench.measure.components import count_other_models

    trained, reference, reward = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4, bias=False)
    reference.weight = trained.weight  # 64 bytes already counted as the trained model's
    reward.weight = reference.bias = torch.nn.Parameter(torch.zeros(4, 4))  # one storage of 64 bytes
    assert count_other_models([reference, reward], trained) == 64


def test_weights_count_each_storage_once_even_under_two_parameters():
    """Two parameters over one storage (a head that is a view of the embedding's memory): 64 bytes, not 128."""
    import torch

    from bench.measure.components import Components, count_weights

    model = torch.nn.Module()
    model.embedding = torch.nn.Parameter(torch.zeros(4, 4))
    model.head = torch.nn.Parameter(model.embedding.data)
    counted = Components()
    count_weights(model, counted)
    assert (counted.weights_trainable, counted.weights_frozen, counted.weights_by_dtype) == (64, 0, {"float32": 64})


def test_quantised_weights_count_their_scales_and_every_quantisation_state():
    """A 4-bit weight: packed bytes, absmax, code, offset and the nested state's own; an 8-bit one its float32
    scale per row (SCB). Their dtypes are named as `weights_by_dtype` reports them."""
    from types import SimpleNamespace

    import torch

    from bench.measure.components import Components, count_weights, parameter_bytes

    nested = SimpleNamespace(absmax=torch.zeros(2), code=torch.zeros(256), state2=None)  # 8 + 1,024 bytes
    state = SimpleNamespace(
        quant_type="nf4", absmax=torch.zeros(4, dtype=torch.uint8), code=torch.zeros(16), offset=torch.zeros(1),
        state2=nested,
    )  # fmt: skip
    packed = torch.nn.Parameter(torch.zeros(32, 1, dtype=torch.uint8), requires_grad=False)
    packed.quant_state = state
    eight = torch.nn.Parameter(torch.zeros(4, 8, dtype=torch.int8), requires_grad=False)
    eight.SCB = torch.zeros(4)
    assert parameter_bytes(packed) == 32 + 4 + 64 + 4 + 8 + 1_024
    assert parameter_bytes(eight) == 32 + 16
    model = torch.nn.Module()
    model.packed, model.eight = packed, eight
    counted = Components()
    count_weights(model, counted)
    assert counted.weights_by_dtype == {"nf4(4-bit)": 1_136, "int8": 48}
    assert (counted.weights_trainable, counted.weights_frozen) == (0, 1_184)


def test_a_caches_tensors_are_found_four_levels_down_each_storage_once_and_a_meta_view_as_its_base():
    from types import SimpleNamespace

    import torch

    from bench.measure.components import cache_bytes

    keys, values = torch.zeros(2, 8), torch.zeros(2, 8)  # 64 bytes each
    cache = SimpleNamespace(layers=[SimpleNamespace(pair=(keys, values)), SimpleNamespace(pair=(keys[:1], values))])
    assert cache_bytes(cache) == 128
    assert cache_bytes(SimpleNamespace(deeper=cache)) == 0  # past four levels: not looked into
    on_meta = torch.empty(4, 8, device="meta")  # 128 bytes, two views of it
    assert cache_bytes([on_meta[:2], on_meta[2:]]) == 128


def test_the_saved_tensor_peak_releases_what_autograd_drops_and_keeps_the_highest_moment():
    """A step that keeps two exp outputs (512 bytes each: exp keeps its output, the product both inputs), then one
    that keeps one: the peak is the first's, and after each backward nothing is held."""
    import torch

    from bench.measure.components import SavedTensorPeak

    x = torch.randn(16, 8, requires_grad=True)
    with SavedTensorPeak([x]) as tracker:
        ((x * 2).exp() * (x + 1).exp()).sum().backward()
        (x + 1).exp().sum().backward()
    assert (tracker.peak, tracker.live) == (1024, 0)


# a run's memory limit (bench.measure.limits)


def test_a_limit_is_at_least_a_byte_and_the_child_keeps_a_reservation_the_user_set(monkeypatch):
    """A limit that rounds to 0 bytes would read as no limit (`if limit:` in the executors)."""
    from bench.measure.limits import child_env, limit_bytes

    assert limit_bytes(1e-12) == 1 and limit_bytes(None) is None
    monkeypatch.delenv("MIMALLOC_ARENA_RESERVE", raising=False)
    assert child_env(1) == {"BENCH_MEMORY_LIMIT_BYTES": str(2**30), "MIMALLOC_ARENA_RESERVE": "64MiB"}
    monkeypatch.setenv("MIMALLOC_ARENA_RESERVE", "256MiB")
    assert child_env(1)["MIMALLOC_ARENA_RESERVE"] == "256MiB"


def _limited(environment: dict[str, str], before: str = "") -> list[int | None]:
    """[what apply_memory_limit returns, the soft and hard RLIMIT_DATA after it] in a process of its own."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import json, resource\nfrom bench.measure.limits import apply_memory_limit\n"
        f"{before}\nset = apply_memory_limit()\n"
        "print(json.dumps([set, *resource.getrlimit(resource.RLIMIT_DATA)]))\n"
    )
    root = Path(__file__).resolve().parents[1]
    environ = {name: value for name, value in os.environ.items() if name not in ("LOCAL_WORLD_SIZE",)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, timeout=60,
        env={**environ, "PYTHONPATH": str(root), **environment},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_rank_gets_its_share_and_a_lower_limit_already_set_stays():
    import resource

    infinity = resource.RLIM_INFINITY
    gib = {"BENCH_MEMORY_LIMIT_BYTES": str(2**32)}
    assert _limited({}) == [None, *resource.getrlimit(resource.RLIMIT_DATA)]
    assert _limited({"BENCH_MEMORY_LIMIT_BYTES": ""})[0] is None
    if resource.getrlimit(resource.RLIMIT_DATA) != (infinity, infinity):
        pytest.skip("this process already runs under a data limit")
    assert _limited(gib) == [2**32, 2**32, infinity]  # the hard limit left as it was
    assert _limited({**gib, "LOCAL_WORLD_SIZE": "4"}) == [2**30, 2**30, infinity]
    lower = "resource.setrlimit(resource.RLIMIT_DATA, ({}, {}))"
    assert _limited(gib, lower.format(2**31, "resource.RLIM_INFINITY")) == [2**31, 2**31, infinity]
    assert _limited(gib, lower.format(2**30, 2**31)) == [2**30, 2**30, 2**31]


@pytest.mark.parametrize(
    ("failure", "limit", "named"),
    [
        (-9, 2**30, "likely out of memory: killed by SIGKILL, as an OOM killer ends a process; the run's memory "
         "limit was 1 GiB"),
        ("ray.exceptions.OutOfMemoryError: Task was killed", 3 * 2**29, "out of memory: the node ran low and an OOM "
         "killer ended the run (OutOfMemoryError); the run's memory limit was 1.5 GiB"),
        ("OSError: [Errno 12] Cannot allocate memory", None, "out of memory: Cannot allocate memory"),
        ("RuntimeError: can't start new thread", None, None),  # a thread without a stack: only under a limit
        ("RuntimeError: can't start new thread", 2**30, "out of memory: the run exceeded its memory limit of 1 GiB "
         "(execution.resources.memory_gib, set with setrlimit): can't start new thread"),
    ],
)  # fmt: skip
def test_an_out_of_memory_reason_names_the_cause_and_the_limit(failure, limit, named):
    from bench.measure.limits import out_of_memory_reason

    assert out_of_memory_reason(failure, limit) == named
