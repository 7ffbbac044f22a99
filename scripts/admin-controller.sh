#!/usr/bin/env bash
# The admin's controller for `ansible-playbook -K ansible/site.yml`, on Ubuntu 22.04, 24.04, 26.04 (or Debian 12):
# a Python >= 3.11 from the distribution, a virtualenv (.venv-admin), the `admin` extra of pyproject.toml (only
# ansible-core, pinned by constraints.txt) and the collections of ansible/requirements.yml, taken from the pinned
# `ansible` wheel on PyPI (the versions the tests run). Never pip outside the virtualenv (PEP 668).
# usage: scripts/admin-controller.sh      then: export PATH="$PWD/.venv-admin/bin:$PATH"
# env:   VENV (default .venv-admin)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-admin}"
log() { echo "admin-controller: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  log "apt-get install $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

# The distribution's own Python when it is new enough (24.04: 3.12, 26.04 and Debian 12 likewise), else its
# python3.11 package (22.04's python3 is 3.10; jammy ships python3.11).
python=""
for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
  if command -v "$candidate" >/dev/null && new_enough "$candidate"; then python="$(command -v "$candidate")"; break; fi
done
if [ -z "$python" ]; then
  apt_install python3.11 python3.11-venv
  python="$(command -v python3.11)"
fi
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
log "Python $version ($python)"

# WSL images and minimal installs lack ensurepip: python3.X-venv brings it.
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$python" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install "python$version-venv"
    "$python" -m venv "$VENV"
  fi
fi

# Only the admin extra's requirements, not the project (whose base install is the evaluator).
mapfile -t requirements < <("$VENV/bin/python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["admin"]))
PY
)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt "${requirements[@]}"

# The collections, from the `ansible` wheel constraints.txt pins, into the virtualenv's site-packages (ansible-core
# finds ansible_collections on sys.path), each checked against ansible/requirements.yml's version.
bundle="$(sed -n 's/^ansible==\(.*\)$/\1/p' constraints.txt)"
[ -n "$bundle" ] || { log "constraints.txt pins no ansible==VERSION"; exit 3; }
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheels" "ansible==$bundle"
"$VENV/bin/python" - "$wheels"/ansible-*.whl <<'PY'
import json, sys, sysconfig, zipfile
from pathlib import Path

import yaml

wanted = {c["name"]: str(c["version"]) for c in yaml.safe_load(Path("ansible/requirements.yml").read_text())["collections"]}
target = Path(sysconfig.get_paths()["purelib"])
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name, version in wanted.items():
        prefix = "ansible_collections/" + name.replace(".", "/") + "/"
        found = json.loads(wheel.read(prefix + "MANIFEST.json"))["collection_info"]["version"]
        if found != version:
            sys.exit(f"ansible/requirements.yml wants {name} {version}, the pinned ansible wheel has {found}")
        for member in wheel.namelist():
            if member.startswith(prefix):
                wheel.extract(member, target)
        print(f"admin-controller: collection {name} {version}", file=sys.stderr)
PY
"$VENV/bin/ansible-playbook" --version | head -n1 >&2
log "ready: export PATH=\"$(cd "$VENV" && pwd)/bin:\$PATH\"; ansible-playbook -K ansible/site.yml"
