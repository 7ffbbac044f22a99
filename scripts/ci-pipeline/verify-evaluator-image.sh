#!/usr/bin/env bash
# Build evaluator/Dockerfile for real on a machine without an image registry, and smoke-test the image; then
# receiver/Dockerfile from its own context (each image without the other's code).
# Starts a private dockerd (own socket and data root, no bridge/iptables changes), makes the python base
# from the Debian 12 rootfs of scripts/debian-rootfs.sh plus Debian's python3-venv, builds the image with
# PyPI reached through the host network (the host's CA bundle is copied in for pip), then checks that the
# image runs as uid 10001 and, with no network at all, runs the contract: two shards of a suite with
# pre-recorded answers (no model call), aggregate, gate. Takes a few minutes (pip installs the runtime deps).
# Not part of the Jenkins pipeline (that uses the host's daemon and the real python base image).
# usage: scripts/ci-pipeline/verify-evaluator-image.sh        exit 0 when the image builds and runs
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/verify-evaluator-image.XXXXXX)"
export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=0 DOCKER_CONFIG="$work/client"
log() { echo "verify-evaluator-image: $*" >&2; }

cleanup() {
  if [ -s "$work/docker.pid" ]; then
    kill "$(cat "$work/docker.pid")" 2>/dev/null || true
    for _ in $(seq 30); do [ -e "$work/docker.pid" ] || break; sleep 1; done
  fi
  awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mountpoint; do umount -l "$mountpoint" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

rootfs="$("$repo/scripts/debian-rootfs.sh")"
dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/docker.pid" --host "$DOCKER_HOST" \
  --bridge none --iptables=false --ip6tables=false --ip-masq=false >"$work/dockerd.log" 2>&1 &
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null || { tail -20 "$work/dockerd.log" >&2; exit 1; }

docker import "$rootfs" local/debian12:rootfs >/dev/null
mkdir -p "$work/pybase"
cp /etc/ssl/certs/ca-certificates.crt "$work/pybase/host-ca.crt"
cat >"$work/pybase/Dockerfile" <<'EOD'
FROM local/debian12:rootfs
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv \
    && ln -s /usr/bin/python3 /usr/local/bin/python && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
EOD
log "python base from the Debian 12 rootfs"
docker build --quiet --network host --tag local/python:3.11-debian12 "$work/pybase" >/dev/null
log "building evaluator/Dockerfile"
docker build --network host --build-arg PYTHON_IMAGE=local/python:3.11-debian12 \
  --file "$repo/evaluator/Dockerfile" --tag ai-eval-factory/evaluator:verify "$repo" >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log" >&2; exit 1; }
version="$(docker run --rm --network none ai-eval-factory/evaluator:verify --version)"
# `docker run IMAGE` with nothing else: the image's default command must work on its base install (no extras).
docker run --rm --network none ai-eval-factory/evaluator:verify >"$work/default.log" 2>&1 \
  || { tail -20 "$work/default.log" >&2; log "the image's default command failed"; exit 1; }
grep -q "Usage: evaluator" "$work/default.log" || { log "the default command printed no usage"; exit 1; }
uid="$(docker run --rm --network none --entrypoint id ai-eval-factory/evaluator:verify -u)"
size="$(docker image inspect --format '{{.Size}}' ai-eval-factory/evaluator:verify)"
[ "$uid" = 10001 ] || { log "image runs as uid $uid, expected 10001"; exit 1; }
# The release receiver is its own image (receiver/Dockerfile): none of it may ride along in the evaluator's.
docker run --rm --network none --entrypoint python ai-eval-factory/evaluator:verify -c '
import importlib.util, shutil, sys
found = [name for name in ("release_receiver", "evaluator.webhook") if importlib.util.find_spec(name) is not None]
found += [path for path in [shutil.which("release-receiver")] if path]
sys.exit(f"the evaluator image carries receiver code: {found}" if found else 0)' >&2 \
  || { log "the evaluator image carries the release receiver"; exit 1; }
log "building receiver/Dockerfile (its own build context)"
docker build --network host --build-arg PYTHON_IMAGE=local/python:3.11-debian12 \
  --tag ai-eval-factory/release-receiver:verify "$repo/receiver" >"$work/receiver-build.log" 2>&1 \
  || { tail -40 "$work/receiver-build.log" >&2; exit 1; }
receiver_uid="$(docker run --rm --network none --entrypoint id ai-eval-factory/release-receiver:verify -u)"
[ "$receiver_uid" = 10001 ] || { log "the receiver image runs as uid $receiver_uid, expected 10001"; exit 1; }
docker run --rm --network none --entrypoint python ai-eval-factory/release-receiver:verify -c '
import importlib.util, sys
sys.exit("the receiver image carries the evaluator" if importlib.util.find_spec("evaluator") else 0)' >&2 \
  || { log "the receiver image carries the evaluator"; exit 1; }
receiver_version="$(docker run --rm --network none ai-eval-factory/release-receiver:verify --version)"

# The Indexed Job contract inside the image: JOB_COMPLETION_INDEX picks the shard, as in a pod.
mkdir -p "$work/suite"
cat >"$work/suite/suite.yaml" <<'EOD'
name: image-smoke
dataset: cases.jsonl
metrics:
  - type: exact_match
gate:
  min_pass_rate: 1.0
  error_budget: 0.0
  mode: block
EOD
for i in 1 2 3 4; do
  printf '{"id": "c%s", "input": "%s + 1?", "expected_output": "%s", "actual_output": "%s"}\n' "$i" "$i" "$((i + 1))" "$((i + 1))"
done >"$work/suite/cases.jsonl"
container="verify-evaluator-$$"
docker create --name "$container" --network none --entrypoint sh ai-eval-factory/evaluator:verify -c '
  set -e
  for index in 0 1; do
    JOB_COMPLETION_INDEX=$index EVAL_TOTAL_SHARDS=2 evaluator run /work/suite/suite.yaml --out /work/out --run-id smoke
  done
  evaluator aggregate /work/out --out /work/out/report.json --expect-shards 2
  evaluator gate /work/out/report.json' >/dev/null
docker cp "$work/suite/." "$container:/work/suite/"
if ! docker start --attach "$container" >"$work/contract.log" 2>&1; then
  tail -40 "$work/contract.log" >&2
  log "shard -> aggregate -> gate failed inside the image"
  exit 1
fi
docker cp "$container:/work/out/report.json" "$work/report.json"
docker rm "$container" >/dev/null
cases="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["totals"]["cases"])' "$work/report.json")"
[ "$cases" = 4 ] || { log "the aggregate counted $cases cases, expected 4"; exit 1; }
log "receiver image: $receiver_version, uid $receiver_uid, no evaluator inside"
log "ok: $version, uid $uid, $((size / 1024 / 1024)) MiB; 2 shards, $cases cases, gate passed offline"
