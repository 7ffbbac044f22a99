"""Pod Security Admission as the API server enforces it: the stand-in every pod of the journeys passes through.

Models k8s.io/pod-security-admission (Kubernetes v1.33, `policy/check_*.go`), level `restricted`, version `latest`,
which is what the factory's namespace label `pod-security.kubernetes.io/enforce: restricted` asks for. PSA enforces
on Pods only: a Job or Deployment whose template violates the policy is stored (with a warning), and its controller
then fails to create every pod (`FailedCreate`), so the Job hangs until its deadline. Here, as there, the check runs
where a pod is created: `kube_pods.index_pods` / `job_pod` (the Job controller), the vLLM Deployment's pod, each Argo
step's pod, and the stand-in kubectl's `run` and `apply` of a Pod (ad-hoc pods of the scripts).

Every check of the `baseline` and `restricted` levels that can apply to a Linux pod is here, each with upstream's
reason text (`forbiddenReason` / `forbiddenDetail`), so a refusal reads like the API server's:

  pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Manifest = dict[str, Any]
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

# check_capabilities_baseline.go: what baseline allows to be added.
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
# check_restrictedVolumes.go: the only volume sources restricted allows.
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}  # fmt: skip
# check_sysctls.go (v1.32+ list).
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
}  # fmt: skip
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


class Forbidden(Exception):
    """The API server's 403 for a pod: the message is upstream's."""


def containers(spec: Manifest) -> Iterator[Manifest]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _names(items: list[Manifest]) -> str:
    quoted = ", ".join(f'"{c["name"]}"' for c in items)
    return f"container {quoted}" if len(items) == 1 else f"containers {quoted}"


def violations(spec: Manifest, level: str = "restricted") -> list[str]:
    """Upstream's `reason (detail)` for each check the pod spec fails, in upstream's check order."""
    pod_sc = spec.get("securityContext") or {}
    out: list[str] = []
    every = list(containers(spec))

    def sc(c: Manifest) -> Manifest:
        return c.get("securityContext") or {}

    # --- baseline -------------------------------------------------------------------------------------------
    if any((sc(c).get("windowsOptions") or {}).get("hostProcess") for c in every) or (
        pod_sc.get("windowsOptions") or {}
    ).get("hostProcess"):
        out.append("hostProcess (pod or containers must not set securityContext.windowsOptions.hostProcess=true)")
    host = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        out.append(f"host namespaces ({', '.join(host)})")
    privileged = [c for c in every if sc(c).get("privileged")]
    if privileged:
        out.append(f"privileged ({_names(privileged)} must not set securityContext.privileged=true)")
    added = [c for c in every if set((sc(c).get("capabilities") or {}).get("add") or []) - _BASELINE_CAPABILITIES]
    if added:
        out.append(f"non-default capabilities ({_names(added)} must not include capabilities beyond the default set)")
    host_paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        out.append(f"hostPath volumes (volumes {', '.join(repr(n) for n in host_paths)})")
    ports = [c for c in every if any(p.get("hostPort") for p in c.get("ports") or [])]
    if ports:
        out.append(f"hostPort ({_names(ports)} uses hostPorts)")
    for where in [pod_sc, *(sc(c) for c in every)]:
        if (where.get("appArmorProfile") or {}).get("type") == "Unconfined":
            out.append('forbidden AppArmor profile (appArmorProfile.type "Unconfined")')
            break
    for where in [pod_sc, *(sc(c) for c in every)]:
        options = where.get("seLinuxOptions") or {}
        if options.get("type", "") not in _SELINUX_TYPES or options.get("user") or options.get("role"):
            out.append("seLinuxOptions (type, user or role not allowed)")
            break
    if any(sc(c).get("procMount", "Default") != "Default" for c in every):
        out.append("procMount (containers must not set securityContext.procMount)")
    unconfined = [c for c in every if (sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined" or unconfined:
        out.append(
            'seccompProfile (pod or containers must not set securityContext.seccompProfile.type to "Unconfined")'
        )
    unsafe = [s["name"] for s in pod_sc.get("sysctls") or [] if s["name"] not in _SAFE_SYSCTLS]
    if unsafe:
        out.append(f"forbidden sysctls ({', '.join(unsafe)})")
    if level == "baseline":
        return out

    # --- restricted ----------------------------------------------------------------------------------------
    bad_volumes = [v["name"] for v in spec.get("volumes") or [] if not (set(v) - {"name"}) <= _RESTRICTED_VOLUMES]
    if bad_volumes:
        out.append(f"restricted volume types (volumes {', '.join(repr(n) for n in bad_volumes)} use restricted types)")
    escalation = [c for c in every if sc(c).get("allowPrivilegeEscalation") is not False]
    if escalation:
        out.append(
            f"allowPrivilegeEscalation != false ({_names(escalation)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    explicit_false = [c for c in every if sc(c).get("runAsNonRoot") is False]
    unset = [c for c in every if sc(c).get("runAsNonRoot") is None]
    if pod_sc.get("runAsNonRoot") is False or explicit_false or (pod_sc.get("runAsNonRoot") is not True and unset):
        who = _names(explicit_false or unset) if (explicit_false or unset) else "pod"
        out.append(f"runAsNonRoot != true (pod or {who} must set securityContext.runAsNonRoot=true)")
    root = [c for c in every if sc(c).get("runAsUser") == 0]
    if pod_sc.get("runAsUser") == 0 or root:
        out.append("runAsUser=0 (pod and containers must not set runAsUser=0)")
    pod_profile = (pod_sc.get("seccompProfile") or {}).get("type")
    missing = [
        c
        for c in every
        if (sc(c).get("seccompProfile") or {}).get("type", pod_profile) not in ("RuntimeDefault", "Localhost")
    ]
    if missing:
        out.append(
            f'seccompProfile (pod or {_names(missing)} must set securityContext.seccompProfile.type to "RuntimeDefault"'
            ' or "Localhost")'
        )
    no_drop = [c for c in every if "ALL" not in ((sc(c).get("capabilities") or {}).get("drop") or [])]
    extra = [c for c in every if set((sc(c).get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}]
    if no_drop or extra:
        parts = []
        if no_drop:
            parts.append(f'{_names(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
        if extra:
            parts.append(f"{_names(extra)} must not include capabilities in securityContext.capabilities.add")
        out.append(f"unrestricted capabilities ({'; '.join(parts)})")
    return out


def level_of(namespace: Manifest | None) -> str:
    """The namespace's enforce level (`privileged` without a label, as upstream's default)."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(ENFORCE_LABEL, "privileged"))


def admit(pod: Manifest, namespace: Manifest | None) -> Manifest:
    """The pod, if its namespace's level admits it; else `Forbidden` with upstream's message."""
    level = level_of(namespace)
    if level == "privileged":
        return pod
    found = violations(pod["spec"], level)
    if found:
        name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
        raise Forbidden(f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {", ".join(found)}')
    return pod
