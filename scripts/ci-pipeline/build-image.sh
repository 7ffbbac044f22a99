#!/usr/bin/env bash
# Build the evaluator image with the host's Docker (Docker-out-of-Docker: the CLI in the Jenkins container,
# the daemon on the host), tagged by the commit; push it when a registry is configured (cluster path).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

image="$(image_ref)"
docker build \
  --file "$WORKSPACE/evaluator/Dockerfile" \
  --tag "$image" \
  --label "org.opencontainers.image.revision=$COMMIT" \
  --label "org.opencontainers.image.source=${REPOSITORY:-local}" \
  "$WORKSPACE"
if [ -n "${REGISTRY:-}" ]; then
  # REGISTRY_USER / REGISTRY_PASSWORD come from the 'registry' credential; --password-stdin keeps it off argv.
  if [ -n "${REGISTRY_PASSWORD:-}" ]; then
    printf '%s' "$REGISTRY_PASSWORD" | docker login --username "${REGISTRY_USER:?}" --password-stdin "$REGISTRY"
  fi
  docker push "$image"
fi
log "built $image"
