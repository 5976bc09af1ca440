"""Progress from a run's process to the suite's: one JSON object per stdout line after EVENT_PREFIX.
The worker and its alignment phases emit; the backends relay (bench/backends/local.py)."""

from __future__ import annotations

import json
import os
from typing import Any

EVENT_PREFIX = "@@bench "


def emit(event: dict[str, Any]) -> None:
    if os.environ.get("RANK", "0") != "0":  # several processes per run: rank 0 speaks for the run
        return
    print(EVENT_PREFIX + json.dumps(event), flush=True)


def note(message: str) -> None:
    emit({"event": "note", "message": message})
