#!/usr/bin/env bash
# Refuse a build whose parameters are not what the webhook receiver forwards: a full commit SHA, a PR
# number, owner/name. With --head, also require that the checkout is exactly that commit.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

require_commit
[[ "${PR_NUMBER:-}" =~ ^[1-9][0-9]{0,9}$ ]] || die 2 "PR_NUMBER must be a positive integer, got '${PR_NUMBER:-}'"
[[ "${REPOSITORY:-}" =~ ^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$ ]] || die 2 "REPOSITORY must be owner/name, got '${REPOSITORY:-}'"
[[ "${EVAL_PATH}" == local || "${EVAL_PATH}" == cluster ]] || die 2 "EVAL_PATH must be local or cluster, got '$EVAL_PATH'"

if [ "${1:-}" = "--head" ]; then
  head="$(git -C "$WORKSPACE" rev-parse HEAD)"
  [ "$head" = "$COMMIT" ] || die 2 "checked out $head, but the release commit is $COMMIT"
fi
log "release PR #$PR_NUMBER of $REPOSITORY at $COMMIT (path: $EVAL_PATH)"
