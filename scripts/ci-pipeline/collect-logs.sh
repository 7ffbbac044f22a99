#!/usr/bin/env bash
# post { always }: keep what explains a failure. Never fails the build itself (best effort, bounded).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
set +e

mkdir -p "$LOGS_DIR"
rid="$(run_id 2>/dev/null)"
docker version >"$LOGS_DIR/docker-version.txt" 2>&1
if [ -n "$rid" ]; then
  docker logs "eval-$rid" >"$LOGS_DIR/eval-container.log" 2>&1
  if [ "$EVAL_PATH" = cluster ] && [ -n "${KUBECONFIG:-}" ]; then
    ns="${EVAL_NAMESPACE:-$(cat "$RENDER_DIR/namespace" 2>/dev/null || echo default)}"
    for job in "eval-$rid" "aggregate-$rid"; do
      timeout 60 kubectl --namespace "$ns" describe job "$job" >"$LOGS_DIR/$job.describe.txt" 2>&1
      timeout 60 kubectl --namespace "$ns" get job "$job" --output yaml >"$LOGS_DIR/$job.yaml" 2>&1
      timeout 120 kubectl --namespace "$ns" logs --selector "job-name=$job" --all-containers --prefix \
        --tail 2000 >"$LOGS_DIR/$job.log" 2>&1
    done
    timeout 60 kubectl --namespace "$ns" get events --sort-by .lastTimestamp >"$LOGS_DIR/events.txt" 2>&1
  fi
fi
exit 0
