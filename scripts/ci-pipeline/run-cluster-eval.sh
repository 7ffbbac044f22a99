#!/usr/bin/env bash
# Cluster path: render this run's manifests (pulumi/factory/render.py: suite ConfigMap, Indexed Job,
# aggregate Job, collector pod) with the run id, the commit and the image built for it, apply them server-side
# (a client-side apply copies each object into an annotation capped at 256 KiB), and wait for the Job WITHOUT
# hanging: `kubectl wait` for Complete and for Failed run in parallel, the first to return decides, the other is
# killed. Then the aggregate Job, then the results are copied out through the rendered collector pod (the
# namespace enforces the `restricted` Pod Security Standard: an ad-hoc `kubectl run` pod would be refused).
# Exit: 0 complete, 4 Job failed or timed out (infrastructure: see the Job's description in logs/), 2 bad input.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

rid="$(run_id)"
image="$(image_ref)"
stack="${PULUMI_STACK:-dev}"
ns="${EVAL_NAMESPACE:-}"  # default: the namespace the stack renders into
job_timeout="${EVAL_JOB_TIMEOUT:-6000s}"
render_dir="$RENDER_DIR"
KUBECTL="${KUBECTL:-kubectl}"
PYTHON="${PYTHON:-$VENV/bin/python}"

# wait_job NAME: 0 when the Job completes, 4 when it fails or the wait times out. Never hangs longer than
# $job_timeout: both waiters carry the timeout, and whichever returns first ends the other.
wait_job() {
  local job="$1" complete_pid failed_pid winner rc
  "$KUBECTL" --namespace "$ns" wait --for=condition=complete "job/$job" --timeout="$job_timeout" >/dev/null 2>&1 &
  complete_pid=$!
  "$KUBECTL" --namespace "$ns" wait --for=condition=failed "job/$job" --timeout="$job_timeout" >/dev/null 2>&1 &
  failed_pid=$!
  set +e
  wait -n -p winner "$complete_pid" "$failed_pid"
  rc=$?
  set -e
  kill "$complete_pid" "$failed_pid" 2>/dev/null || true
  wait "$complete_pid" "$failed_pid" 2>/dev/null || true
  if [ "$winner" = "$complete_pid" ] && [ "$rc" -eq 0 ]; then
    log "job/$job complete"
    return 0
  fi
  if [ "$winner" = "$failed_pid" ] && [ "$rc" -eq 0 ]; then
    log "job/$job failed"
  else
    log "job/$job: no verdict within $job_timeout (or kubectl failed, exit $rc)"
  fi
  return 4
}

render() {
  rm -rf "$render_dir"
  (cd "$WORKSPACE/pulumi" && "$PYTHON" -m factory.render --stack "$stack" --out "$render_dir" \
    --run-id "$rid" --commit "$COMMIT" --suite "$WORKSPACE/$EVAL_SUITE" --image "$image") >&2
}

# fact KEY: one of the rendered run's launch facts, render's run/<run-id>.json (namespace, completions, ...).
fact() {
  "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$render_dir/run/$rid.json" "$1"
}

# apply FILE...: server-side, as every documented path applies a run.
apply() {
  local args=()
  for f in "$@"; do args+=(-f "$f"); done
  "$KUBECTL" apply --server-side "${args[@]}"
}

main() {
  render
  mapfile -t files < <(find "$render_dir/run/$rid" -maxdepth 1 -name '*.yaml' | sort)
  [ "${#files[@]}" -eq 4 ] || die 2 "expected 4 rendered run manifests (suite, eval Job, aggregate Job, collector pod), got ${#files[@]}"
  if [ -z "$ns" ]; then ns="$(fact namespace)"; fi
  echo "$ns" >"$render_dir/namespace"  # for collect-logs.sh
  mkdir -p "$RESULTS_DIR"
  # aggregate.sh expects exactly as many shards as the Job has completions (the stack's eval.shards).
  fact completions >"$RESULTS_DIR/.expected-shards"
  apply "${files[0]}" "${files[1]}"
  local eval_rc=0 agg_rc=0
  wait_job "$(fact eval_job)" || eval_rc=$?
  # Aggregate even after a failed Job: the report records which shards are missing and the gate fails.
  apply "${files[2]}"
  wait_job "$(fact aggregate_job)" || agg_rc=$?
  collect "${files[3]}"
  # The run's ConfigMap has no owner that would take it along: it goes once the run is over.
  "$KUBECTL" --namespace "$ns" delete configmap "$(fact suite_configmap)" --ignore-not-found >/dev/null || true
  if [ "$eval_rc" -ne 0 ]; then exit "$eval_rc"; fi
  log "aggregate Job exit verdict: $agg_rc (the pipeline's Gate stage decides on the copied report)"
}

# collect FILE: copy <results>/<run-id> off the results volume through the rendered collector pod (restricted
# security context, the volume read-only), then delete it. The pod's image may still be pulling: wait long enough.
collect() {
  local pod
  pod="$(fact collector_pod)"
  "$KUBECTL" --namespace "$ns" delete pod "$pod" --ignore-not-found --wait=true >/dev/null
  apply "$1" >/dev/null
  if ! "$KUBECTL" --namespace "$ns" wait --for=condition=Ready "pod/$pod" --timeout="${EVAL_COLLECT_TIMEOUT:-600s}" >/dev/null; then
    log "the collector pod $pod did not start: results stay on the volume (kubectl -n $ns describe pod $pod)"
    return 0
  fi
  mkdir -p "$RESULTS_DIR"
  "$KUBECTL" --namespace "$ns" cp "$pod:$(fact results_path_in_collector)/." "$RESULTS_DIR/" || log "copying results failed"
  "$KUBECTL" --namespace "$ns" delete pod "$pod" --wait=false >/dev/null || true
}

if [ "${1:-}" = "--wait-only" ]; then
  # For tests and manual use: wait for one Job with the same non-hanging logic.
  ns="${ns:-default}"
  wait_job "${2:?--wait-only JOB}"
  exit $?
fi
main
