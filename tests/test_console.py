"""Progress where no terminal shows the bar (a log file, CI): phases and every tenth of the steps
are printed as lines, so long work is visibly moving."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from bench.cli.console import RichProgress


def test_progress_prints_lines_when_the_output_is_not_a_terminal():
    out = io.StringIO()
    progress = RichProgress(Console(file=out, force_terminal=False, width=200))
    spec = SimpleNamespace(label="lora", seed=1, budget=SimpleNamespace(steps=20))
    progress.start_run(0, 4, spec)
    progress.event({"event": "phase", "phase": "evaluate (base)"})
    for step in range(1, 21):
        progress.event({"event": "step", "step": step, "total": 20, "loss": 1.0 / step})
    progress.close()
    lines = out.getvalue().splitlines()
    assert "  run 1/4 lora seed=1: evaluate (base)" in lines
    steps = [line for line in lines if ": step " in line]
    assert steps[0] == "  run 1/4 lora seed=1: step 2/20 loss 0.5000" and len(steps) == 10
