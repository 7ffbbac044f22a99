# shellcheck shell=bash
# Shared by the release pipeline's scripts (sourced, not run). Everything the Jenkinsfile needs is decided
# here and in the `evaluator` CLI, so the Groovy stays a plain list of steps.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKSPACE="${WORKSPACE:-$REPO_ROOT}"
RESULTS_DIR="${RESULTS_DIR:-$WORKSPACE/results}"
LOGS_DIR="${LOGS_DIR:-$WORKSPACE/logs}"
RENDER_DIR="${RENDER_DIR:-$WORKSPACE/rendered}"
VENV="${VENV:-$WORKSPACE/.venv-ci}"
IMAGE_REPO="${IMAGE_REPO:-ai-eval-factory/evaluator}"
EVAL_SUITE="${EVAL_SUITE:-evaluator/examples/demo/suite.yaml}"
EVAL_WORKERS="${EVAL_WORKERS:-2}"
EVAL_SHARDS="${EVAL_SHARDS:-$EVAL_WORKERS}"
EVAL_PATH="${EVAL_PATH:-local}"

log() { echo "ci-pipeline: $*" >&2; }
die() { local code="$1"; shift; echo "ci-pipeline: error: $*" >&2; exit "$code"; }

require_commit() {
  [[ "${COMMIT:-}" =~ ^[0-9a-f]{40}$ ]] || die 2 "COMMIT must be a 40-character lowercase hex SHA, got '${COMMIT:-}'"
}

# GATE_MODE: block (the job's default: a failing gate stops the release), warn, or suite (the suite's own
# gate.mode). Prints the `evaluator gate` flags for it.
gate_mode() {
  local mode="${GATE_MODE:-block}"
  case "$mode" in
    suite) echo "" ;;
    warn | block) echo "--mode $mode" ;;
    *) die 2 "GATE_MODE must be block, warn or suite, got '$mode'" ;;
  esac
}

# The image is tagged by the commit it was built from; the run id is a DNS label (Kubernetes names).
image_ref() { require_commit; echo "${REGISTRY:+$REGISTRY/}$IMAGE_REPO:$COMMIT"; }
run_id() { require_commit; echo "${RUN_ID:-r${BUILD_NUMBER:-0}-${COMMIT:0:12}}"; }

evaluator() { "$VENV/bin/evaluator" "$@"; }

# `docker login` into this build's own DOCKER_CONFIG (the Jenkinsfile sets it under the workspace's @tmp folder
# and deletes it after the build), never the agent's ~/.docker where every later build would find it.
docker_login() {
  local config="${DOCKER_CONFIG:-}"
  [ -n "$config" ] || die 2 "DOCKER_CONFIG is not set: docker login would write the credential into the agent's ~/.docker"
  [ "${config%/}" != "${HOME:-/nonexistent}/.docker" ] || die 2 "DOCKER_CONFIG is the agent's ~/.docker: use the build's own folder"
  mkdir -p "$config"
  printf '%s' "${REGISTRY_PASSWORD:?REGISTRY_PASSWORD is not set}" \
    | docker login --username "${REGISTRY_USER:?REGISTRY_USER is not set}" --password-stdin "$REGISTRY"
}

# The evaluation container never shares the host's network, so a server on the host is not at 127.0.0.1:
# refuse such a URL with the address that works instead (the run adds host.docker.internal -> the host).
require_reachable_url() {
  local name="$1" url="${!1:-}"
  local host="${url#*://}"
  host="${host%%/*}"
  host="${host%:*}"
  case "$host" in
    localhost | 127.* | "[::1]" | ::1 | 0.0.0.0)
      die 2 "$name=$url points at the loopback of the evaluation container, not at the host: use http://host.docker.internal:PORT/... (the server must listen on the Docker bridge)" ;;
  esac
}
