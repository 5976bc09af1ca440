"""Fault: every optimizer step uses half the learning rate it was given (issue 24's planted fault)."""

import os

os.environ["BENCH_FAULT_LR_FACTOR"] = "0.5"
import weak_lr  # noqa: E402,F401  (registers the lr hook with the factor above)
