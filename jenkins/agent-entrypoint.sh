#!/bin/sh
# The build agent's entrypoint (jenkins/Dockerfile, target agent), as root before sshd starts.
# Builds arrive over SSH as user jenkins, and an SSH session gets its groups from /etc/group, not from the
# container's --group-add: so the mounted Docker socket's group is looked up now, at run time (never baked
# into the image), and jenkins is made a member. Then the image's own setup-sshd: the first argument is the
# controller's public key, the rest go to sshd (the stack pins the host key with -o HostKey=...).
set -eu
socket=/var/run/docker.sock
if [ -S "$socket" ]; then
  gid="$(stat -c %g "$socket")"
  group="$(getent group "$gid" | cut -d: -f1)"
  if [ -z "$group" ]; then
    group=docker-host
    groupadd --gid "$gid" "$group"
  fi
  usermod --append --groups "$group" jenkins
fi
exec setup-sshd "$@"
