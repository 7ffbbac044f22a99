#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system packages, the pinned virtualenv, lint, types, tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not molecule" -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
EXTRAS="demo,report,dev,ansible,pulumi,pipeline" scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" DEEPEVAL_TELEMETRY_OPT_OUT=1 DEEPEVAL_DISABLE_DOTENV=1
echo "== ruff" >&2
ruff check .
ruff format --check .
echo "== mypy" >&2
mypy
echo "== pytest" >&2
# Two workers, one test file each at a time, the longest files first (tests/conftest.py): Molecule and the image
# builds mostly wait on containers, so the rest of the suite runs beside them. `-n 0` runs everything in one process.
exec pytest -n 2 --dist loadfile --no-loadscope-reorder "$@"
