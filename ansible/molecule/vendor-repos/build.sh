#!/usr/bin/env bash
# Builds, once per machine, stand-ins for Docker's and NVIDIA's apt repositories (neither is reachable here), in
# their real layouts and signed with throwaway keys, so the roles take the path real hosts take:
#   www/linux/debian/                 Docker's layout (reprepro): dists/bookworm/stable, the key at .../gpg
#   www/libnvidia-container/          NVIDIA's: the flat repository stable/deb/amd64/ (apt-ftparchive), gpgkey
#   keys/*.gpg                        the same public keys as binary keyrings, as an earlier manual install has them
# The packages carry the real names. Where Debian ships the real software they carry it: docker-ce,
# docker-ce-cli and containerd.io are Debian 12's docker.io, containerd and runc repackaged (Docker's packages
# conflict with those names, so they cannot merely depend on them: the role removes them), docker-compose-plugin
# carries Debian 13's docker-compose, the real compose v2 (2.26.1, a Go binary needing only libc6 >= 2.34), fetched
# from the Debian mirror this machine's apt already uses (its trixie suite, through a private apt list). Where nothing real can run here (no GPU), the stand-in says so in its own output:
# nvidia-ctk edits daemon.json exactly as NVIDIA's does, and `nvidia-ctk --version` names itself a stand-in.
#
# usage: ansible/molecule/vendor-repos/build.sh      prints the directory on stdout (cached under .cache/)
# env:   ROOTFS_CACHE_DIR (default <repo>/.cache), shared with scripts/debian-rootfs.sh.
# Needs: apt-get (Debian 12 sources), dpkg-deb, reprepro, apt-ftparchive (apt-utils), gpg.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${ROOTFS_CACHE_DIR:-$repo/.cache}"
codename=bookworm
arch=amd64
debian_packages=(docker.io containerd runc)
# compose v2 is in Debian 13 (trixie) only: docker_compose_v2 needs 2.18.0 or newer.
compose_suite=trixie

log() { echo "vendor-repos: $*" >&2; }

for tool in apt-get apt-cache dpkg-deb reprepro apt-ftparchive gpg; do
  command -v "$tool" >/dev/null || { log "$tool is missing: apt-get install \$(cat scripts/apt/ansible.txt)"; exit 3; }
done
if [ "$(sed -n "s/^VERSION_CODENAME=//p" /etc/os-release)" != "$codename" ]; then
  log "the repackaged binaries come from this machine's apt sources, which must be Debian 12 ($codename)"
  exit 3
fi

# A machine whose apt lists were never downloaded knows no package yet.
# (apt-cache may exit 0 with nothing to show when its lists are empty: look for the packages' Version lines.)
[ "$(apt-cache show --no-all-versions "${debian_packages[@]}" 2>/dev/null | grep -c '^Version:')" = "${#debian_packages[@]}" ] ||
  apt-get update -qq >&2
# Debian 13's lists, apart from the machine's own (its apt state is not touched): the mirror its bookworm main uses.
mirror="$(apt-get indextargets --format '$(REPO_URI) $(CODENAME) $(COMPONENT)' 'Identifier: Packages' |
  awk -v c="$codename" '$2 == c && $3 == "main" {print $1; exit}')"
[ -n "$mirror" ] || { log "no Debian $codename main source in this machine's apt sources"; exit 3; }
suite_apt="$cache/apt-$compose_suite"
mkdir -p "$suite_apt/lists/partial"
echo "deb $mirror $compose_suite main" >"$suite_apt/sources.list"
suite_opts=(-o "Dir::Etc::SourceList=$suite_apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$suite_apt/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
  -o APT::Sandbox::User=root)
apt-cache "${suite_opts[@]}" show --no-all-versions docker-compose 2>/dev/null | grep -c '^Version:' >/dev/null ||
  apt-get "${suite_opts[@]}" update -qq >&2
# The cache key: this recipe and the Debian versions it repackages.
versions="$(apt-cache show --no-all-versions "${debian_packages[@]}" | grep -E '^(Package|Version):' | tr '\n' ' ')"
versions="$versions $(apt-cache "${suite_opts[@]}" show --no-all-versions docker-compose | grep -E '^Version:')"
key="$(cat "$0" "$here"/standins/* | sha256sum | cut -c1-8)$(echo "$versions" | sha256sum | cut -c1-4)"
out="$cache/vendor-repos-$key"
mkdir -p "$cache"
exec 9>"$cache/vendor-repos.lock"
flock 9
if [ -s "$out/www/linux/debian/gpg" ]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d "$cache/vendor-repos-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "building $out (once per machine)"
mkdir -p "$work/debs" "$work/pkg" "$work/out/www" "$work/out/keys" "$work/gnupg"
chmod 700 "$work/gnupg"
export GNUPGHOME="$work/gnupg"

(cd "$work/debs" && apt-get download -q "${debian_packages[@]}" >&2 2>/dev/null) ||
  (cd "$work/debs" && apt-get download "${debian_packages[@]}" >&2)
(cd "$work/debs" && apt-get "${suite_opts[@]}" download -q docker-compose >&2)
upstream_version() { dpkg-deb -f "$work/debs/$1"_*.deb Version; }

# build NAME VERSION CONTROL_FIELDS  (files already under $work/pkg/NAME, maintainer scripts in DEBIAN/)
build() {
  local name="$1" version="$2" fields="$3" root="$work/pkg/$1"
  mkdir -p "$root/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Maintainer: ai-eval-factory tests <tests@localhost>"
    printf '%s\n' "$fields"
  } >"$root/DEBIAN/control"
  find "$root/DEBIAN" -maxdepth 1 -type f \( -name 'post*' -o -name 'pre*' \) -exec chmod 0755 {} +
  # gzip, fast: the repository is served on loopback, size does not matter.
  dpkg-deb --root-owner-group -Zgzip -z1 -b "$root" "$work/out/${name}_${version#*:}_${arch}.deb" >/dev/null
}

# Debian's files, without documentation.
extract() {
  local deb="$1" root="$2"
  mkdir -p "$root"
  dpkg-deb -x "$work/debs/$deb"_*.deb "$root"
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian"
}

# containerd.io: Docker's package bundles containerd and runc.
extract containerd "$work/pkg/containerd.io"
extract runc "$work/pkg/containerd.io"
mkdir -p "$work/pkg/containerd.io/DEBIAN"
dpkg-deb -e "$work/debs"/containerd_*.deb "$work/ctl-containerd"
cp "$work/ctl-containerd"/{postinst,prerm,postrm,conffiles} "$work/pkg/containerd.io/DEBIAN/"
build containerd.io "$(upstream_version containerd | sed 's/~ds.*//')-1~standin" \
  "Depends: libc6 (>= 2.34), libseccomp2 (>= 2.5.0)
Provides: containerd, runc
Conflicts: containerd, runc
Replaces: containerd, runc
Description: STAND-IN for Docker's containerd.io: Debian 12's containerd and runc, repackaged by the tests
 Built by ansible/molecule/vendor-repos/build.sh; not Docker's package."

# docker-ce-cli and docker-ce: Debian's docker.io split the way Docker splits its packages.
extract docker.io "$work/docker.io"
mkdir -p "$work/pkg/docker-ce-cli/usr/bin"
mv "$work/docker.io/usr/bin/docker" "$work/pkg/docker-ce-cli/usr/bin/docker"
rm -rf "$work/docker.io/usr/share/bash-completion" "$work/docker.io/usr/share/zsh" "$work/docker.io/usr/share/fish"
mv "$work/docker.io" "$work/pkg/docker-ce"
docker_version="5:$(upstream_version docker.io | sed 's/+dfsg.*//')-1~standin~debian.12~$codename"
build docker-ce-cli "$docker_version" \
  "Depends: libc6 (>= 2.34)
Conflicts: docker.io
Replaces: docker.io
Description: STAND-IN for Docker's docker-ce-cli: Debian 12's docker CLI, repackaged by the tests
 Built by ansible/molecule/vendor-repos/build.sh; not Docker's package."
mkdir -p "$work/pkg/docker-ce/DEBIAN"
dpkg-deb -e "$work/debs"/docker.io_*.deb "$work/ctl-docker"
cp "$work/ctl-docker"/{preinst,postinst,prerm,postrm,conffiles} "$work/pkg/docker-ce/DEBIAN/"
build docker-ce "$docker_version" \
  "Depends: containerd.io (>= 1.6), docker-ce-cli, iptables, libc6 (>= 2.34), libdevmapper1.02.1, libsystemd0, adduser, tini
Conflicts: docker.io, docker-engine
Replaces: docker.io
Description: STAND-IN for Docker's docker-ce: Debian 12's dockerd, repackaged by the tests
 Built by ansible/molecule/vendor-repos/build.sh; not Docker's package."

# The CLI plugins: Debian 12 has no compose v2 or buildx. compose is Debian 13's real compose v2.
mkdir -p "$work/pkg/docker-compose-plugin/usr/libexec/docker/cli-plugins" \
  "$work/pkg/docker-buildx-plugin/usr/libexec/docker/cli-plugins"
dpkg-deb -x "$work/debs"/docker-compose_*.deb "$work/compose"
install -m 0755 "$work/compose/usr/libexec/docker/cli-plugins/docker-compose" \
  "$work/pkg/docker-compose-plugin/usr/libexec/docker/cli-plugins/"
install -m 0755 "$here/standins/docker-buildx" "$work/pkg/docker-buildx-plugin/usr/libexec/docker/cli-plugins/"
build docker-compose-plugin "$(upstream_version docker-compose | sed 's/-.*//')-1~standin~debian.12~$codename" \
  "Depends: docker-ce-cli, libc6 (>= 2.34)
Description: STAND-IN for Docker's docker-compose-plugin: Debian 13's compose v2, repackaged by the tests
 Built by ansible/molecule/vendor-repos/build.sh; not Docker's package."
build docker-buildx-plugin "0.0.0-1~standin~debian.12~$codename" \
  "Depends: docker-ce-cli
Description: STAND-IN for Docker's docker-buildx-plugin: answers version, builds nothing
 Built by ansible/molecule/vendor-repos/build.sh; not Docker's package."

# NVIDIA: the toolkit's four packages at the version the role pins (nvidia-container-toolkit-base: the CLI and the
# runtime; nvidia-container-toolkit: the hook; libnvidia-container-tools and libnvidia-container1: empty here), plus
# a 1.19.1 and a newer 1.20.1 of each, so the role's pin is what chooses (apt would take the newest).
toolkit_version="$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' "$here/standins/nvidia-ctk")"
for version in 1.19.1 "$toolkit_version" 1.20.1; do
  rm -rf "$work/pkg/nvidia-container-toolkit-base" "$work/pkg/nvidia-container-toolkit" \
    "$work/pkg/libnvidia-container-tools" "$work/pkg/libnvidia-container1"
  mkdir -p "$work/pkg/nvidia-container-toolkit-base/usr/bin" "$work/pkg/nvidia-container-toolkit/usr/bin" \
    "$work/pkg/libnvidia-container-tools" "$work/pkg/libnvidia-container1"
  install -m 0755 "$here/standins/nvidia-ctk" "$here/standins/nvidia-container-runtime" \
    "$work/pkg/nvidia-container-toolkit-base/usr/bin/"
  install -m 0755 "$here/standins/nvidia-container-runtime-hook" "$work/pkg/nvidia-container-toolkit/usr/bin/"
  build libnvidia-container1 "$version-1" \
    "Description: STAND-IN for NVIDIA's libnvidia-container1: empty, no GPU support
 Built by ansible/molecule/vendor-repos/build.sh; not NVIDIA's package."
  build libnvidia-container-tools "$version-1" \
    "Depends: libnvidia-container1 (= $version-1)
Description: STAND-IN for NVIDIA's libnvidia-container-tools: empty, no GPU support
 Built by ansible/molecule/vendor-repos/build.sh; not NVIDIA's package."
  build nvidia-container-toolkit-base "$version-1" \
    "Depends: python3
Description: STAND-IN for NVIDIA's nvidia-container-toolkit-base: nvidia-ctk edits daemon.json, no GPU support
 Built by ansible/molecule/vendor-repos/build.sh; not NVIDIA's package."
  build nvidia-container-toolkit "$version-1" \
    "Depends: nvidia-container-toolkit-base (= $version-1), libnvidia-container-tools (= $version-1)
Description: STAND-IN for NVIDIA's nvidia-container-toolkit: no GPU support
 Built by ansible/molecule/vendor-repos/build.sh; not NVIDIA's package."
done

# Two throwaway signing keys: each repository is trusted only through its own keyring.
newkey() {
  gpg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key "$1" ed25519 sign never 2>/dev/null
  gpg --list-keys --with-colons "$1" | awk -F: '/^fpr:/ {print $10; exit}'
}
docker_key="$(newkey 'Docker repository STAND-IN (ai-eval-factory tests) <docker-standin@localhost>')"
nvidia_key="$(newkey 'libnvidia-container STAND-IN (ai-eval-factory tests) <nvidia-standin@localhost>')"

# Docker: reprepro, Docker's layout and the key at <base>/gpg (ASCII-armored, as download.docker.com serves it).
docker_base="$work/out/www/linux/debian"
mkdir -p "$docker_base/conf"
cat >"$docker_base/conf/distributions" <<EOF
Origin: Docker
Label: Docker CE (stand-in)
Codename: $codename
Architectures: $arch
Components: stable
Description: STAND-IN for download.docker.com, built by the ai-eval-factory tests
SignWith: $docker_key
EOF
reprepro -b "$docker_base" --silent includedeb "$codename" \
  "$work/out"/docker-ce_*.deb "$work/out"/docker-ce-cli_*.deb "$work/out"/containerd.io_*.deb \
  "$work/out"/docker-compose-plugin_*.deb "$work/out"/docker-buildx-plugin_*.deb >&2
rm -rf "$docker_base/conf" "$docker_base/db"
gpg --armor --export "$docker_key" >"$docker_base/gpg"
gpg --export "$docker_key" >"$work/out/keys/docker-archive-keyring.gpg"

# NVIDIA: a flat repository per architecture (apt's $(ARCH)), the key at <base>/gpgkey.
nvidia_base="$work/out/www/libnvidia-container"
flat="$nvidia_base/stable/deb/$arch"
mkdir -p "$flat"
mv "$work/out"/nvidia-container-toolkit*.deb "$work/out"/libnvidia-container*.deb "$flat/"
(
  cd "$flat"
  apt-ftparchive packages . >Packages
  gzip -9kn Packages
  apt-ftparchive -o APT::FTPArchive::Release::Origin=NVIDIA \
    -o "APT::FTPArchive::Release::Label=libnvidia-container (stand-in)" release . >Release
  gpg --batch --yes --local-user "$nvidia_key" --clearsign -o InRelease Release
  gpg --batch --yes --local-user "$nvidia_key" -abs -o Release.gpg Release
)
gpg --armor --export "$nvidia_key" >"$nvidia_base/gpgkey"
gpg --export "$nvidia_key" >"$work/out/keys/nvidia-container-toolkit-keyring.gpg"
rm -f "$work/out"/*.deb

chmod -R a+rX "$work/out"
rm -rf "$out"
mv "$work/out" "$out"
find "$cache" -maxdepth 1 -name 'vendor-repos-*' -type d ! -name "${out##*/}" ! -name '*-build.*' -exec rm -rf {} +
log "built $out"
echo "$out"
