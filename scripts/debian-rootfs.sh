#!/usr/bin/env bash
# Builds, once, a debootstrapped Debian 12 rootfs tarball with systemd, python3 and sudo: the base of the
# Molecule test instances (no image registry is reachable, so images are made locally) and of the tiny
# stand-in images other tests `docker import`. Cached under .cache/, keyed by the recipe below: bump
# `recipe` when the steps after debootstrap change.
#
# usage: scripts/debian-rootfs.sh [--podman-image REPO]
#   prints the tarball's path as the first line on stdout; with --podman-image it also imports the tarball into
#   podman as REPO:<cache key> (unless that exists), /sbin/init as the command, and prints that as a second line.
# env:   ROOTFS_CACHE_DIR (default <repo>/.cache), CONTAINERS_CONF (podman's config, see ansible/molecule/).
# Safe to call concurrently: one flock serialises builders, and the tarball appears by an atomic rename.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${ROOTFS_CACHE_DIR:-$repo/.cache}"
suite=bookworm
packages="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,gnupg"
image=""
recipe=2

while [ $# -gt 0 ]; do
  case "$1" in
    --podman-image) image="${2:?--podman-image needs a name}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "debian-rootfs.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "debian-rootfs: $*" >&2; }

# A build folder goes with whatever is mounted inside it (debootstrap mounts the target's /proc and /sys, and a
# build killed mid-way never unmounts them); --one-file-system never follows a mount that would not let go.
release_build() {
  local dir="$1" mounts
  mounts="$(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r)" || true
  if [ -n "$mounts" ]; then
    while read -r target; do umount -l "$target" || log "could not unmount $target"; done <<<"$mounts"
  fi
  rm -rf --one-file-system "$dir"
}

# The mirror comes from this machine's own apt configuration, never from a host written here.
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # deb822: the first stanza whose Suites holds the plain release (not -security/-updates).
    uri="$(awk -v s="$suite" '
      /^[[:space:]]*$/ { if (u != "" && hit) { print u; exit } u=""; hit=0; next }
      /^URIs:/ { u=$2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit=1 }
      END { if (u != "" && hit) print u }' "$f" | head -n1)"
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  if [ -r /etc/apt/sources.list ]; then
    uri="$(awk -v s="$suite" '$1 == "deb" && $3 == s { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list)"
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  fi
  return 1
}

key="$(echo "$recipe $suite $packages" | sha256sum | cut -c1-12)"
tarball="$cache/debian12-rootfs-$key.tar"
mkdir -p "$cache"

exec 9>"$cache/debian-rootfs.lock"
flock 9
# Under the lock no other build runs: a rootfs-build.* folder here is what a killed build left behind.
for stale in "$cache"/rootfs-build.*; do
  [ -d "$stale" ] || continue
  log "removing $stale, left by a build that did not finish"
  release_build "$stale"
done

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 3; }
  [ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 3; }
  mirror="$(debian_mirror)" || { log "no Debian '$suite' mirror found in /etc/apt/sources.list(.d)"; exit 3; }
  work="$(mktemp -d "$cache/rootfs-build.XXXXXX")"
  trap 'release_build "$work"' EXIT
  log "debootstrap $suite from $mirror into $work (a few minutes, once)"
  keyring=()
  [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] &&
    keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  debootstrap --variant=minbase "${keyring[@]}" --include="$packages" "$suite" "$work/root" "$mirror" >&2
  # The instance's apt reads the same mirrors as this machine (its sources and Acquire:: settings).
  rm -f "$work/root/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$work/root/etc/apt/sources.list.d/" 2>/dev/null ||
    echo "deb $mirror $suite main" >"$work/root/etc/apt/sources.list"
  for f in /etc/apt/apt.conf.d/*; do
    if grep -q '^Acquire::' "$f" 2>/dev/null; then cp "$f" "$work/root/etc/apt/apt.conf.d/"; fi
  done
  # A container boots without getty or udev settling; keep the boot short and quiet.
  for unit in getty.target systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
    sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service; do
    ln -sf /dev/null "$work/root/etc/systemd/system/$unit"
  done
  : >"$work/root/etc/machine-id"
  chroot "$work/root" apt-get clean
  rm -rf "$work/root/var/lib/apt/lists/"*
  # Empty lists must look stale, or apt's cache_valid_time would trust them and find no package.
  touch -d @0 "$work/root/var/lib/apt/lists"
  tar --numeric-owner -C "$work/root" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
  find "$cache" -maxdepth 1 -name 'debian12-rootfs-*.tar' ! -name "${tarball##*/}" -delete
  log "built $tarball"
fi

echo "$tarball"
if [ -n "$image" ]; then
  image="$image:$key"
  if ! podman image exists "$image"; then
    log "podman import $tarball as $image"
    podman import --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' "$tarball" "$image" >&2
  fi
  echo "$image"
fi
