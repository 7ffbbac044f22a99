#!/usr/bin/env bash
# The release job's trust boundary, run from the protected release branch's checkout (the job's SCM: trusted
# pipeline code, never the commit under test) BEFORE any file of COMMIT runs. A signature on the delivery only
# proves that someone knows the webhook secret; git is the authority on what was merged:
#   REPOSITORY  must be the pinned repository (RELEASE_REPOSITORY, from the stack, never from the delivery), and
#               this checkout's origin its URL (RELEASE_REPO_URL);
#   BASE_REF    must be the release branch (RELEASE_BRANCH), or match an opted-in RELEASE_BRANCH_GLOBS pattern;
#   COMMIT      must be a commit of that repository reachable from origin/BASE_REF: a reviewed merge.
# Then COMMIT is checked out (detached) for the rest of the build. Any refusal exits 2 and names why.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

require_commit
: "${RELEASE_REPOSITORY:?RELEASE_REPOSITORY is not set (the stack sets it from ci_stack_release_repo_url)}"
: "${RELEASE_REPO_URL:?RELEASE_REPO_URL is not set}" "${RELEASE_BRANCH:?RELEASE_BRANCH is not set}"
pinned="$RELEASE_REPOSITORY"
repository="${REPOSITORY:-}"
[[ -n "$repository" && "${repository,,}" == "${pinned,,}" ]] \
  || die 2 "REPOSITORY ${REPOSITORY:-(none)} is not the pinned repository $pinned: refused"

allowed=0
[ "${BASE_REF:-}" = "$RELEASE_BRANCH" ] && allowed=1
for glob in ${RELEASE_BRANCH_GLOBS:-}; do
  # shellcheck disable=SC2053  # a glob on purpose: the admin's opt-in pattern
  [[ "${BASE_REF:-}" == $glob ]] && allowed=1
done
[ "$allowed" = 1 ] || die 2 "BASE_REF '${BASE_REF:-}' is not a release branch ($RELEASE_BRANCH${RELEASE_BRANCH_GLOBS:+ $RELEASE_BRANCH_GLOBS}): refused"

origin="$(git -C "$WORKSPACE" remote get-url origin)"
[ "$origin" = "$RELEASE_REPO_URL" ] || die 2 "this checkout's origin is $origin, not the pinned $RELEASE_REPO_URL: refused"
git -C "$WORKSPACE" fetch --quiet --no-tags origin "+refs/heads/$BASE_REF:refs/remotes/origin/$BASE_REF" \
  || die 2 "cannot fetch $BASE_REF from $RELEASE_REPO_URL"
git -C "$WORKSPACE" cat-file -e "$COMMIT^{commit}" 2>/dev/null \
  || die 2 "$COMMIT is not a commit of $pinned: refused"
git -C "$WORKSPACE" merge-base --is-ancestor "$COMMIT" "refs/remotes/origin/$BASE_REF" \
  || die 2 "$COMMIT is not reachable from origin/$BASE_REF of $pinned (not a reviewed merge): refused"
git -C "$WORKSPACE" checkout --quiet --detach "$COMMIT"
log "$COMMIT is reachable from origin/$BASE_REF of $pinned: checked out"
