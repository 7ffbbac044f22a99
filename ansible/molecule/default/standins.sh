#!/bin/sh
# Builds, when missing, the stand-in images the ci_stack role runs in the Molecule test (no registry is
# reachable; Debian's mirror is, so the stand-ins get their few packages with apt):
#   jenkins   standins.jenkins.py as uid 1000: reads the real casc files with strict resolution, answers the
#             Generic Webhook Trigger endpoint as the whitelist/HMAC/token would, reaches the agent over SSH
#   agent     the real jenkins/agent-entrypoint.sh, then sshd (like jenkins/ssh-agent's setup-sshd) with the
#             Docker CLI: builds would run here as jenkins (uid 1000)
#   receiver  the real `release-receiver serve` code (receiver/release_receiver, run with Debian's python3
#             and click instead of the pip-installed image) as uid 10001
#   frpc      standins.frpc.py: renders and checks the real frp/frpc.toml as frpc would, reaches the receiver at
#             its fixed address, hands over requests as frps would send them through the tunnel, health-checks
#             it; Debian's wget for the compose health check (the real frpc image has busybox wget)
#   portainer refuses to start unless its secret file is mounted
# Prints "changed" when it built anything, for the task's changed_when.
set -eu
tarball="$1"
src="$2"
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
  case "$name" in
    jenkins) cp "$src/jenkins-standin.py" "$work/$name/" ;;
    agent) cp /usr/bin/docker "$src/agent-entrypoint.sh" "$work/$name/" ;;
    receiver) rm -rf "$work/$name/release_receiver" && cp -r "$src/release_receiver" "$work/$name/" ;;
    frpc) cp "$src/frpc-standin.py" "$work/$name/" ;;
  esac
  # --network host: apt reaches Debian's mirror the way this instance does.
  docker build -q --network host -t "molecule-standin/$name:test" "$work/$name" >/dev/null
  echo changed
}

build tools <<'DOCKERFILE'
FROM molecule-standin/base:test
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-yaml python3-click openssh-server openssh-client \
    && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*
DOCKERFILE

build jenkins <<'DOCKERFILE'
FROM molecule-standin/tools:test
RUN useradd --uid 1000 --create-home jenkins && mkdir -p /var/jenkins_home && chown 1000:1000 /var/jenkins_home
COPY jenkins-standin.py /usr/local/bin/jenkins-standin
USER 1000
ENV JENKINS_HOME=/var/jenkins_home
CMD ["python3", "/usr/local/bin/jenkins-standin"]
DOCKERFILE

build agent <<'DOCKERFILE'
FROM molecule-standin/tools:test
COPY docker /usr/local/bin/docker
COPY agent-entrypoint.sh /usr/local/bin/agent-entrypoint
# Like jenkins/ssh-agent: a key-only account that is not locked, pam_loginuid optional in a container.
RUN useradd --uid 1000 --create-home --home-dir /home/jenkins jenkins && usermod --password '*' jenkins \
    && mkdir -p /home/jenkins/agent /run/sshd && chown 1000:1000 /home/jenkins/agent \
    && sed -i 's/^session\s*required\s*pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd \
    && printf 'PasswordAuthentication no\nPermitRootLogin no\n' > /etc/ssh/sshd_config.d/agent.conf \
    && printf '%s\n' '#!/bin/sh' '# setup-sshd of jenkins/ssh-agent: the first argument is the authorized key, the rest go to sshd.' \
       'set -eu' 'mkdir -p /home/jenkins/.ssh /run/sshd' 'echo "$1" > /home/jenkins/.ssh/authorized_keys' \
       'chown -R jenkins:jenkins /home/jenkins/.ssh && chmod 0700 /home/jenkins/.ssh' 'shift' \
       'exec /usr/sbin/sshd -D -e "$@"' > /usr/local/bin/setup-sshd \
    && chmod 0755 /usr/local/bin/setup-sshd /usr/local/bin/agent-entrypoint
ENTRYPOINT ["/usr/local/bin/agent-entrypoint"]
DOCKERFILE

build receiver <<'DOCKERFILE'
FROM molecule-standin/tools:test
RUN useradd --uid 10001 --home-dir /work --no-create-home evaluator \
    && mkdir -p /work/out && chown -R 10001:10001 /work
COPY release_receiver /opt/receiver/release_receiver
ENV PYTHONPATH=/opt/receiver
# The console script the real image installs (the compose health check runs `release-receiver health`).
RUN printf '%s\n' '#!/bin/sh' 'exec python3 -m release_receiver "$@"' > /usr/local/bin/release-receiver \
    && chmod 0755 /usr/local/bin/release-receiver
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["release-receiver"]
DOCKERFILE

build frpc <<'DOCKERFILE'
FROM molecule-standin/base:test
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
COPY frpc-standin.py /usr/local/bin/frpc-standin
ENTRYPOINT ["python3", "/usr/local/bin/frpc-standin"]
DOCKERFILE

build portainer <<'DOCKERFILE'
FROM molecule-standin/base:test
ENTRYPOINT ["/bin/sh", "-c", "test -s /run/secrets/portainer_admin_password && exec python3 -m http.server 9443", "--"]
DOCKERFILE
