#!/usr/bin/env bash
# The release itself, reached only after the gate (pass, or warn in warn mode): the evaluated image is
# promoted as release-pr-<PR>, and pushed when a registry is configured. It is the very image the gate decided on
# (tagged by the commit), never a rebuild.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[[ "${PR_NUMBER:-}" =~ ^[1-9][0-9]*$ ]] || die 2 "PR_NUMBER must be a positive integer"
evaluated="$(image_ref)"
released="${evaluated%:*}:release-pr-$PR_NUMBER"
docker tag "$evaluated" "$released"
if [ -n "${REGISTRY:-}" ] && [ "$EVAL_PATH" = cluster ]; then
  if [ -n "${REGISTRY_PASSWORD:-}" ]; then docker_login; fi
  docker push "$released"
fi
log "released $released"
