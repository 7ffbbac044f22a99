#!/usr/bin/env bash
# Jenkins' side of "every release exactly once": the receiver may forward a release twice (a retry after Jenkins
# queued it but the answer was lost), and Jenkins' queue merges only items still waiting. So the first build of a
# release claims it (repository + PR + merge commit; mkdir is atomic, on the agent's persistent volume) and every
# later build of the same release stops before it does anything. Writes results/release-claim: `claimed` or
# `duplicate` (the Jenkinsfile reads it); RERUN=true (an admin's "Build with Parameters") claims it again.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

require_commit
[[ "${PR_NUMBER:-}" =~ ^[1-9][0-9]{0,9}$ ]] || die 2 "PR_NUMBER must be a positive integer, got '${PR_NUMBER:-}'"
: "${REPOSITORY:?REPOSITORY is not set}"
claims="${RELEASE_CLAIMS_DIR:?RELEASE_CLAIMS_DIR is not set (the agent node sets it: a folder that outlives builds)}"
key="$(printf '%s#%s@%s' "${REPOSITORY,,}" "$PR_NUMBER" "$COMMIT" | sha256sum | cut -c1-40)"
mkdir -p "$claims" "$RESULTS_DIR"
owner="${BUILD_URL:-build ${BUILD_NUMBER:-?}}"
if mkdir "$claims/$key" 2>/dev/null; then
  echo "$owner" >"$claims/$key/owner"
  echo claimed >"$RESULTS_DIR/release-claim"
  log "claimed release PR #$PR_NUMBER of $REPOSITORY at $COMMIT"
elif [ "${RERUN:-false}" = true ]; then
  before="$(cat "$claims/$key/owner" 2>/dev/null || echo 'another build')"
  echo "$owner" >"$claims/$key/owner"
  echo claimed >"$RESULTS_DIR/release-claim"
  log "RERUN=true: releasing PR #$PR_NUMBER at $COMMIT again (claimed before by $before)"
else
  echo duplicate >"$RESULTS_DIR/release-claim"
  log "release PR #$PR_NUMBER at $COMMIT already claimed by $(cat "$claims/$key/owner" 2>/dev/null || echo 'another build'): nothing to do"
fi
