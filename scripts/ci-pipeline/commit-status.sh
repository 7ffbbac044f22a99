#!/usr/bin/env bash
# Report the release on the merge commit as a GitHub commit status (context release/evaluation-gate), linking
# the build. `commit-status.sh pending` when the build starts; `commit-status.sh --from-result` in post, from
# BUILD_RESULT (SUCCESS and UNSTABLE: released, the latter after a gate failure in warn mode; FAILURE: the gate
# or a step failed, with the gate's one-line reason when it was the gate; anything else: error). GitHub takes a
# description of at most 140 characters. GITHUB_TOKEN comes from the github-token credential and goes to curl
# in a header read from stdin, never on a command line.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

require_commit
[[ "${REPOSITORY:-}" =~ ^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$ ]] || die 2 "REPOSITORY must be owner/name"
: "${GITHUB_TOKEN:?GITHUB_TOKEN is not set (credential github-token)}"
case "${1:-}" in
  pending) state=pending description="evaluating the release" ;;
  --from-result)
    case "${BUILD_RESULT:-}" in
      SUCCESS) state=success description="gate passed; released" ;;
      UNSTABLE) state=success description="gate failed in warn mode; released" ;;
      FAILURE)
        state=failure description="gate failed or the evaluation broke: not released"
        if [ -s "$RESULTS_DIR/gate-reason" ]; then
          description="not released: gate failed: $(head -n 1 "$RESULTS_DIR/gate-reason")"
        fi ;;
      *) state=error description="build ${BUILD_RESULT:-result unknown}: not released" ;;
    esac ;;
  *) die 2 "usage: commit-status.sh pending | --from-result (with BUILD_RESULT)" ;;
esac
[ "${#description}" -le 140 ] || description="${description:0:139}…"
api="${GITHUB_API_URL:-https://api.github.com}"
payload="$(python3 -c 'import json, sys; print(json.dumps({"state": sys.argv[1], "description": sys.argv[2], "context": "release/evaluation-gate", "target_url": sys.argv[3]}))' \
  "$state" "$description" "${BUILD_URL:-}")"
curl --fail-with-body --silent --show-error --retry 3 --retry-all-errors --max-time 30 \
  --header @- \
  --header "Accept: application/vnd.github+json" \
  --header "X-GitHub-Api-Version: 2022-11-28" \
  --data-binary "$payload" \
  "$api/repos/$REPOSITORY/statuses/$COMMIT" >/dev/null <<<"Authorization: Bearer $GITHUB_TOKEN"
log "commit status $state on $REPOSITORY@$COMMIT"
