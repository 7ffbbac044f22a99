#!/usr/bin/env bash
# The evaluator CLI (aggregate, report, gate) for the pipeline's own steps, in a workspace venv pinned by
# constraints.txt. The evaluation itself runs in the image built from the same commit.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet --constraint "$WORKSPACE/constraints.txt" "${WORKSPACE}[report]"
evaluator --version
