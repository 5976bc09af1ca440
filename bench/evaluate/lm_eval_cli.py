"""lm-eval's own command line, with bench's answer filter (`bench_answer`, bench/evaluate/answers.py)
registered first, so that a kept run's generative task files score as the run scored them:

    python -m bench.evaluate.lm_eval_cli --model hf --model_args ... --tasks ... --include_path ...

Everything after the module name is lm-eval's CLI, unchanged (`lm_eval --help`).
"""

from __future__ import annotations

import bench.evaluate.answers  # noqa: F401  (registers the filter with lm-eval)


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
