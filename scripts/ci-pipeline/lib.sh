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

# GATE_MODE: suite (the suite's own gate.mode), warn or block. Prints the `evaluator gate` flags for it.
gate_mode() {
  case "${GATE_MODE:-suite}" in
    suite) echo "" ;;
    warn | block) echo "--mode ${GATE_MODE}" ;;
    *) die 2 "GATE_MODE must be suite, warn or block, got '${GATE_MODE}'" ;;
  esac
}

# The image is tagged by the commit it was built from; the run id is a DNS label (Kubernetes names).
image_ref() { require_commit; echo "${REGISTRY:+$REGISTRY/}$IMAGE_REPO:$COMMIT"; }
run_id() { require_commit; echo "${RUN_ID:-r${BUILD_NUMBER:-0}-${COMMIT:0:12}}"; }

evaluator() { "$VENV/bin/evaluator" "$@"; }
