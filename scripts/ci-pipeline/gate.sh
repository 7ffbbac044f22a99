#!/usr/bin/env bash
# The release gate: exit 0 pass, 1 failed (the build fails, the release is blocked), 2 input error.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

evaluator gate "$RESULTS_DIR/report.json" --mode "${GATE_MODE:-block}"
