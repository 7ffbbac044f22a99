#!/usr/bin/env bash
# Merge every shard into results/report.json; missing or incomplete shards are recorded, not hidden.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# The cluster path records the Job's completions; the local path runs EVAL_WORKERS shards.
expected="$EVAL_SHARDS"
if [ -s "$RESULTS_DIR/.expected-shards" ]; then expected="$(cat "$RESULTS_DIR/.expected-shards")"; fi
evaluator aggregate "$RESULTS_DIR" --out "$RESULTS_DIR/report.json" --expect-shards "$expected"
