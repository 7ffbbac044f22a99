#!/usr/bin/env bash
# The main job on the built-in default: the example suite, several local shards, aggregate, reports, gate,
# against a real small LLM served on 127.0.0.1 (no GPU, no cluster). Arguments go to `evaluator demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="demo,report" scripts/bootstrap.sh
export DEEPEVAL_TELEMETRY_OPT_OUT=1 DEEPEVAL_DISABLE_DOTENV=1
exec .venv/bin/evaluator demo "$@"
