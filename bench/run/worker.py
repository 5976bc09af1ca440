"""One run, top to bottom, in its own process: load -> evaluate base -> prepare -> train -> save ->
evaluate -> latency. Usage: python -m bench.run.worker SPEC.json OUT.json --machine ID

This file is the phase order; what a phase measures is in bench/run/phases.py (alignment's in
bench/run/alignment.py), what the run records in bench/run/recorder.py. Progress goes to stdout as
event lines (bench/run/events.py); the result is written to OUT.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.measure.contention import ContentionMonitor
from bench.measure.limits import apply_memory_limit
from bench.measure.memory import MemoryTracker
from bench.plan import RunSpec
from bench.records.results import RunResult
from bench.records.store import atomic_write_text
from bench.run import alignment, phases
from bench.run.events import emit
from bench.run.recorder import Recorder, now
from bench.training import distributed


def execute(run: Recorder) -> None:
    import torch
    import transformers

    from bench.strategies import STRATEGIES, PrepareContext
    from bench.suite import load_plugins

    spec = run.spec
    load_plugins(spec.plugins)
    device = phases.device_for(spec)
    lead = distributed.rank() == 0  # with several processes, rank 0 evaluates and records
    transformers.logging.set_verbosity_error()
    transformers.set_seed(spec.seed)
    strategy = STRATEGIES.get(spec.strategy)
    options = strategy.Options.model_validate(spec.options)

    loaded, task, retained = phases.load(run, device)
    preference = alignment.load_preference_data(run)
    # Everything so far (the imported stack, the model, the data) lives for the whole run: move it
    # out of the garbage collector's sight, or each full collection walks it all (accelerate runs
    # one at the end of every training: 0.27 s of a 0.53 s smoke training, docs/performance.md)
    gc.freeze()

    before, align_base = phases.score_base(run, loaded, [task, *retained], preference, lead)
    base_model = alignment.start_from_parent(run, loaded, device) if spec.parent else loaded.model
    # Scoring the base model (lm-eval seeds every generator) and training a parent change the random
    # state, and both are skipped when their results are cached: seed again, so that a run trains the
    # same whether this is the suite's first run on a machine or not
    transformers.set_seed(spec.seed)

    emit({"event": "phase", "phase": "train"})
    run.time_reference(device)  # how fast the machine is, just before timing
    context = PrepareContext(tokenizer=loaded.tokenizer, budget=spec.budget, seed=spec.seed, device=device)
    options = phases.size(run, strategy, options, loaded.model, context)
    with MemoryTracker("train") as memory, ContentionMonitor(torch.get_num_threads()) as contention:
        model = strategy.prepare(base_model, options, context)
        run.count_parameters(model)
        from bench.training.train import TrainRequest, train

        outcome = train(
            TrainRequest(
                model,
                loaded.tokenizer,
                strategy.objective,
                task,
                spec.budget,
                spec.training,
                options,
                spec.seed,
                device,
                run.workdir,
                emit,
                preference=preference,
                parallel=spec.parallel,
                steps_begin=contention.narrow,  # the timed window: the steps, not preparing for them
            )
        )
    run.metrics.update(memory.metrics())
    run.contention["train"] = contention.result
    run.record_training(outcome)
    run.record_flops(model, device, options, strategy.objective)
    run.record_memory_components(outcome, loaded, task)
    run.record_ranks()
    if not lead:
        return  # the other ranks' part ends with training; rank 0 goes on alone

    phases.save_artefact(run, strategy, model, loaded.tokenizer)
    phases.measure_tuned(run, model, loaded.tokenizer, task, retained, before)
    if preference is not None:
        emit({"event": "phase", "phase": "evaluate alignment"})
        reward_model = outcome.artefacts.get("reward_model")
        alignment.record_alignment(run, model, loaded.tokenizer, preference, align_base, reward_model)
    phases.measure_latency_phase(run, model, loaded.tokenizer, strategy, task)


def run(spec: RunSpec, machine: str, workdir: Path) -> RunResult:
    started, clock_start = now(), time.perf_counter()
    state = Recorder(spec, workdir)
    status, reason = "ok", None
    try:
        execute(state)
    except Exception as error:  # every failure becomes a record; the traceback travels in it
        from bench.strategies import NotApplicable

        if isinstance(error, NotApplicable):
            status, reason = "skipped", str(error)
        else:
            status, reason = "failed", "".join(traceback.format_exception(error)).strip()
            print(reason, file=sys.stderr)  # the log keeps it as it was: the record's is made portable
    return state.result(status, reason, machine, started, clock_start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run.worker")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--machine", required=True)
    args = parser.parse_args(argv)
    distributed.follow_launcher()  # a torchrun rank dies with its launcher: a killed run leaves none behind
    apply_memory_limit()  # execution.resources.memory_gib (bench/measure/limits.py), per rank under torchrun
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = RunSpec.model_validate_json(args.spec.read_text())
    if spec.processes > 1 and not distributed.launched():  # become the launcher of its ranks
        return distributed.launch(spec.processes, [str(args.spec), str(args.out), "--machine", args.machine])
    if not spec.model.hub:  # nothing else needs the network: fail fast instead of hanging on it
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.run_id}-") as workdir:
        result = run(spec, args.machine, Path(workdir))
    if distributed.rank() == 0:
        atomic_write_text(args.out, result.model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
