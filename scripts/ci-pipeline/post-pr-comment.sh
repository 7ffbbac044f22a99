#!/usr/bin/env bash
# Post the Markdown summary on the release pull request. GITHUB_TOKEN comes from the Jenkins credential;
# it goes to curl through a header file on stdin-like fd, never on the command line.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

body_file="${1:?usage: post-pr-comment.sh COMMENT.md}"
[ -s "$body_file" ] || die 2 "$body_file is missing or empty"
[[ "${PR_NUMBER:-}" =~ ^[1-9][0-9]*$ ]] || die 2 "PR_NUMBER must be a positive integer"
[[ "${REPOSITORY:-}" =~ ^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$ ]] || die 2 "REPOSITORY must be owner/name"
: "${GITHUB_TOKEN:?GITHUB_TOKEN is not set (credential github-token)}"
api="${GITHUB_API_URL:-https://api.github.com}"

payload="$(python3 -c 'import json, sys; print(json.dumps({"body": open(sys.argv[1], encoding="utf-8").read()}))' "$body_file")"
curl --fail-with-body --silent --show-error --retry 3 --retry-all-errors --max-time 30 \
  --header @- \
  --header "Accept: application/vnd.github+json" \
  --header "X-GitHub-Api-Version: 2022-11-28" \
  --data-binary "$payload" \
  "$api/repos/$REPOSITORY/issues/$PR_NUMBER/comments" >/dev/null <<<"Authorization: Bearer $GITHUB_TOKEN"
log "commented on $REPOSITORY#$PR_NUMBER"
