"""Fine-tuning benchmark harness: train strategies under a matched budget and compare them."""

__version__ = "0.1.0"
