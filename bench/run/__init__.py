"""One run in its own process: the worker's phase order, the recorder, the phases."""
