#!/usr/bin/env bash
# Refuse a build whose parameters are not what the webhook receiver forwards (a full commit SHA, a PR number,
# owner/name) or that cannot run (the local path needs the server and model under test). With --head, also
# require that the checkout is exactly that commit. The cluster path takes its models from the stack's
# rendered Job, not from here.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

require_commit
[[ "${PR_NUMBER:-}" =~ ^[1-9][0-9]{0,9}$ ]] || die 2 "PR_NUMBER must be a positive integer, got '${PR_NUMBER:-}'"
[[ "${REPOSITORY:-}" =~ ^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$ ]] || die 2 "REPOSITORY must be owner/name, got '${REPOSITORY:-}'"
[[ "${EVAL_PATH}" == local || "${EVAL_PATH}" == cluster ]] || die 2 "EVAL_PATH must be local or cluster, got '$EVAL_PATH'"
gate_mode >/dev/null
# EVAL_SUITE is a job parameter: a suite file of this commit, nothing outside the checkout.
case "$EVAL_SUITE" in
  /* | ../* | */../* | *"/.." | "..") die 2 "EVAL_SUITE must be a path inside the repository, got '$EVAL_SUITE'" ;;
esac
if [ "$EVAL_PATH" = local ]; then
  for name in EVAL_TARGET_BASE_URL EVAL_TARGET_MODEL; do
    [ -n "${!name:-}" ] || die 2 "the local path needs $name (a job parameter; its default comes from the stack's ci_stack_eval_* settings)"
  done
  require_reachable_url EVAL_TARGET_BASE_URL
  require_reachable_url EVAL_JUDGE_BASE_URL
fi

if [ "${1:-}" = "--head" ]; then
  head="$(git -C "$WORKSPACE" rev-parse HEAD)"
  [ "$head" = "$COMMIT" ] || die 2 "checked out $head, but the release commit is $COMMIT"
  [ -f "$WORKSPACE/$EVAL_SUITE" ] || die 2 "EVAL_SUITE '$EVAL_SUITE' is not a file of this commit"
fi
log "release PR #$PR_NUMBER of $REPOSITORY at $COMMIT (path: $EVAL_PATH, gate mode: $(gate_mode))"
