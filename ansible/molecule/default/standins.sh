#!/bin/sh
# Builds, when missing, the stand-in images the ci_stack role runs in the Molecule test (no registry is
# reachable): the base imported from the Debian rootfs tarball, Jenkins with the docker CLI running as uid 1000
# like the real image, and Portainer/frpc stand-ins that refuse to start unless their secret file is mounted.
# Prints "changed" when it built anything, for the task's changed_when.
set -eu
tarball="$1"
work=/opt/molecule/standins

if ! docker image inspect molecule-standin/base:test >/dev/null 2>&1; then
  docker import "$tarball" molecule-standin/base:test >/dev/null
  echo changed
fi

build() {
  name="$1"
  docker image inspect "molecule-standin/$name:test" >/dev/null 2>&1 && return 0
  mkdir -p "$work/$name"
  cat >"$work/$name/Dockerfile"
  [ "$name" = jenkins ] && cp /usr/bin/docker "$work/$name/docker"
  docker build -q -t "molecule-standin/$name:test" "$work/$name" >/dev/null
  echo changed
}

build jenkins <<'DOCKERFILE'
FROM molecule-standin/base:test
COPY docker /usr/local/bin/docker
RUN useradd --uid 1000 --create-home jenkins
USER jenkins
CMD ["python3", "-m", "http.server", "8080"]
DOCKERFILE

build portainer <<'DOCKERFILE'
FROM molecule-standin/base:test
ENTRYPOINT ["/bin/sh", "-c", "test -s /run/secrets/portainer_admin_password && exec python3 -m http.server 9443", "--"]
DOCKERFILE

build frpc <<'DOCKERFILE'
FROM molecule-standin/base:test
ENTRYPOINT ["/bin/sh", "-c", "grep -q auth.token /etc/frp/frpc.toml && exec sleep infinity", "--"]
DOCKERFILE
