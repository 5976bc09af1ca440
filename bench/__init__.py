"""Fine-tuning benchmark harness: train strategies under a matched budget and compare them."""

import warnings

__version__ = "0.1.0"

# PEFT 0.21 asks transformers 5 for `is_gradient_checkpointing` on every model it wraps, and transformers
# warns that the property is deprecated: once per adapter, on every run and estimate, with nothing a user
# can do about it. Only that message is silenced.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
