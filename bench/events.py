"""Progress from a run's process to the suite's: one JSON object per stdout line after EVENT_PREFIX.
The worker and its alignment phases emit; the backends relay (bench/backends/local.py)."""

from __future__ import annotations

import json
from typing import Any

EVENT_PREFIX = "@@bench "


def emit(event: dict[str, Any]) -> None:
    print(EVENT_PREFIX + json.dumps(event), flush=True)


def note(message: str) -> None:
    emit({"event": "note", "message": message})
