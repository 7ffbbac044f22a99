#!/usr/bin/env bash
# The doctor step of site.yml: runs the evaluator's `doctor` when installed, otherwise the same checks in shell
# form (memory, Docker, GPU, disk). Read-only; exit 0 only when every check passed.
# usage: doctor.sh [DOCTOR_COMMAND]
#
# Docker access is checked as the user would have it after logging in again: a docker group granted earlier in
# this same run is in /etc/group but not in this process (a local connection keeps the groups it started with),
# so such a user's checks run through `sg docker`, a fresh group set, as a new login would.
set -u
doctor_command="${1:-evaluator doctor}"

user="$(id -un)"
with_docker_group() {
  if [ "$(id -u)" = 0 ] || id -nG | tr ' ' '\n' | grep -qx docker; then
    "$@"
  elif getent group docker | cut -d: -f4 | tr ',' '\n' | grep -qx "$user"; then
    sg docker -c "$(printf '%q ' "$@")" </dev/null
  else
    "$@"
  fi
}

if command -v "${doctor_command%% *}" >/dev/null 2>&1; then
  # shellcheck disable=SC2086  # the command and its arguments, split on purpose
  with_docker_group $doctor_command
  exit $?
fi

status=0
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) total"
if command -v docker >/dev/null && with_docker_group docker info >/dev/null 2>&1; then
  echo "docker: daemon reachable as $user"
  with_docker_group docker system df || status=1
else
  echo "docker: daemon NOT reachable as $user: systemctl status docker; is $user in the docker group?"
  status=1
fi
if command -v nvidia-smi >/dev/null || [ -x /usr/lib/wsl/lib/nvidia-smi ]; then
  echo "gpu: nvidia-smi present"
else
  echo "gpu: no nvidia-smi: install the Windows NVIDIA driver (WSL) or the Linux driver (bare metal)"
  status=1
fi
df -h / /var/lib/docker 2>/dev/null || df -h /
exit $status
