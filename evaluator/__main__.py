"""`python -m evaluator` is the `evaluator` command (the --workers children start this way)."""

from evaluator.cli import run_process

run_process()
