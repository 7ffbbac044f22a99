#!/usr/bin/env bash
# Build the evaluator image with the host's Docker (Docker-out-of-Docker: the CLI on the agent, the daemon on
# the host), tagged by the commit. The cluster path then gets it to the cluster: pushed to REGISTRY (with the
# 'registry' credential: REGISTRY_USER, REGISTRY_PASSWORD), or, without a registry, loaded into minikube's
# node, a container named after the profile on this same daemon (what `minikube image load` does).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

image="$(image_ref)"
docker build \
  --file "$WORKSPACE/evaluator/Dockerfile" \
  --tag "$image" \
  --label "org.opencontainers.image.revision=$COMMIT" \
  --label "org.opencontainers.image.source=${REPOSITORY:-local}" \
  "$WORKSPACE"
log "built $image"
[ "$EVAL_PATH" = cluster ] || exit 0

if [ -n "${REGISTRY:-}" ]; then
  # --password-stdin keeps the password off every command line; the build's own DOCKER_CONFIG keeps it off the agent.
  if [ -n "${REGISTRY_PASSWORD:-}" ]; then docker_login; fi
  docker push "$image"
  log "pushed $image"
else
  node="${MINIKUBE_PROFILE:-minikube}"
  docker container inspect "$node" >/dev/null 2>&1 \
    || die 2 "no REGISTRY, and no minikube node container '$node' on this daemon (set REGISTRY or MINIKUBE_PROFILE)"
  docker save "$image" | docker exec -i "$node" docker load
  log "loaded $image into minikube node $node"
fi
