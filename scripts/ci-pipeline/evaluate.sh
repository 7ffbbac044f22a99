#!/usr/bin/env bash
# Run the evaluation on the chosen path; the exit code is the evaluator's (0, 2 config, 3 bad shard,
# 4 infrastructure) so the stage fails the same way a Job would.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

case "$EVAL_PATH" in
  local) exec "$(dirname "$0")/run-local-eval.sh" ;;
  cluster) exec "$(dirname "$0")/run-cluster-eval.sh" ;;
  *) die 2 "EVAL_PATH must be local or cluster, got '$EVAL_PATH'" ;;
esac
