#!/usr/bin/env bash
# Single-host path: `evaluator run SUITE --out DIR --workers W` inside the image built for this commit,
# started as a sibling container by the host's daemon. No bind mount and no volume (a path in the Jenkins
# container is not a path on the host, and no volume of the stack may reach a build's container): the suite goes
# in and the results come out with `docker cp`. Its own network (EVAL_NETWORK, default the daemon's bridge;
# never the host's), no capabilities, no privilege escalation; the host's servers are host.docker.internal. The server and models
# under test come from the job's EVAL_TARGET_* / EVAL_JUDGE_* parameters (the judge defaults to the target);
# no kubeconfig is involved. EVAL_PROFILE (the Jenkinsfile's: the suite's full set) selects the cases.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

: "${EVAL_TARGET_BASE_URL:?the local path needs EVAL_TARGET_BASE_URL}" "${EVAL_TARGET_MODEL:?the local path needs EVAL_TARGET_MODEL}"
export EVAL_JUDGE_BASE_URL="${EVAL_JUDGE_BASE_URL:-$EVAL_TARGET_BASE_URL}" EVAL_JUDGE_MODEL="${EVAL_JUDGE_MODEL:-$EVAL_TARGET_MODEL}"
network="${EVAL_NETWORK:-bridge}"
[ "$network" != host ] || die 2 "EVAL_NETWORK=host: the evaluation container never shares the host's network"
require_reachable_url EVAL_TARGET_BASE_URL
require_reachable_url EVAL_JUDGE_BASE_URL
image="$(image_ref)"
rid="$(run_id)"
name="eval-$rid"
suite_dir="$(cd "$WORKSPACE/$(dirname "$EVAL_SUITE")" && pwd)"
suite_file="$(basename "$EVAL_SUITE")"

docker rm --force "$name" >/dev/null 2>&1 || true
gpu_args=()
if [ -n "${EVAL_GPUS:-}" ]; then gpu_args=(--gpus "$EVAL_GPUS"); fi
host_args=()
if [ "$network" = bridge ]; then host_args=(--add-host host.docker.internal:host-gateway); fi
# -e NAME (without =value) passes the variable from this environment without echoing its value.
docker create --name "$name" --network "$network" "${host_args[@]}" "${gpu_args[@]}" \
  --cap-drop ALL --security-opt no-new-privileges \
  -e EVAL_RUN_ID="$rid" -e EVAL_COMMIT="$COMMIT" -e EVAL_PROFILE \
  -e EVAL_TARGET_BASE_URL -e EVAL_TARGET_MODEL -e EVAL_TARGET_API_KEY \
  -e EVAL_JUDGE_BASE_URL -e EVAL_JUDGE_MODEL -e EVAL_JUDGE_API_KEY \
  "$image" run "/work/suite/$suite_file" --out /work/out --workers "$EVAL_WORKERS" >/dev/null
docker cp "$suite_dir/." "$name:/work/suite/"

set +e
docker start --attach "$name"
rc=$?
set -e
mkdir -p "$RESULTS_DIR"
docker cp "$name:/work/out/." "$RESULTS_DIR/" || log "no results to copy out of $name"
docker rm "$name" >/dev/null
log "evaluator run exited $rc"
exit "$rc"
