"""Fine-tuning benchmark harness: train strategies under a matched budget and compare them."""

import logging
import warnings

__version__ = "0.1.0"

# PEFT 0.21 asks transformers 5 for `is_gradient_checkpointing` on every model it wraps, and transformers
# warns that the property is deprecated: once per adapter, on every run and estimate, with nothing a user
# can do about it. Only that message is silenced.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

# bitsandbytes 0.50, imported on a CPU with AVX-512 BF16, tries to fetch an optional kernel from the Hugging
# Face Hub and logs two lines when it cannot (offline, or the publisher not trusted), before every command.
# The harness never uses that kernel (QLoRA turns bitsandbytes' AVX-512 BF16 path off, FINDINGS.md), so
# only those loggers are quietened, to errors.
for _name in ("bitsandbytes.backends.cpu.ops", "kernels"):
    logging.getLogger(_name).setLevel(logging.ERROR)
