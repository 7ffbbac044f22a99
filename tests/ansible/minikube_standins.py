"""Stand-ins for minikube, kubectl and the node's NVIDIA device plugin, as strict as the upstream code they model.

minikube v1.38.1 (kubernetes/minikube):
- `start` on a new profile saves the cluster config to $MINIKUBE_HOME/profiles/<p>/config.json (Memory in MB,
  CPUs, Driver, GPUs, MountString, ContainerVolumeMounts, KubernetesConfig.{KubernetesVersion,ContainerRuntime});
- `start` on an existing profile keeps its saved memory and CPUs and only warns ("You cannot change the memory
  size for an existing minikube cluster. Please first delete the cluster.", cmd/minikube/cmd/start_flags.go) and
  refuses another mount with GUEST_MOUNT_CONFLICT, exit 81 (cmd/minikube/cmd/start.go);
- `--gpus` accepts all, nvidia, nvidia.com, amd (start.go); `nvidia.com` starts the node with
  `--device nvidia.com/gpu=all`, which Docker resolves from the host's CDI spec (pkg/drivers/kic/oci/oci.go);
  every NVIDIA value enables the nvidia-device-plugin addon, k8s-device-plugin v0.18.2 (pkg/minikube/assets).
The node's GPU, as upstream documents it on WSL2 (minikube#17654, nvidia-container-toolkit#1739,
k8s-device-plugin v0.19.1 changelog "wsl: report a single all device to kubelet", #1699):
- legacy `--gpus all`/`nvidia`: libdxcore.so lands where the node's runtime does not look; the plugin logs
  "Failed to initialize NVML: Not Supported." then "No devices found. Waiting indefinitely." (internal/plugin/
  factory.go, cmd/nvidia-device-plugin/main.go) and the node never gains nvidia.com/gpu;
- CDI `nvidia.com` with a host spec that mounts /usr/lib/wsl/lib/libdxcore.so and a plugin >= v0.19.1: one
  device, "all"; a plugin older than v0.19.1 advertises per-GPU devices whose allocation cannot resolve on WSL
  ("No devices found" is what its log ends with here, as a plugin that cannot serve WSL's device).
On native Linux (`gpu` file says linux) the legacy path works. Every stand-in says STAND-IN in its output.
"""

from __future__ import annotations

import sys
from pathlib import Path

MINIKUBE = r'''#!@PYTHON@
"""STAND-IN minikube (ai-eval-factory tests): the cluster is the folder @STATE@; see tests/ansible/minikube_standins.py."""
import json, os, re, sys
from pathlib import Path

state = Path("@STATE@")
args = sys.argv[1:]
with (state / "calls").open("a") as log:
    log.write(" ".join(args) + "\n")


def flag(name, default=""):
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args) and not args[i + 1].startswith("--"):
            return args[i + 1]
    return default


profile = flag("profile", "minikube")
# pkg/minikube/localpath.MiniPath: $MINIKUBE_HOME itself when it is named .minikube, else $MINIKUBE_HOME/.minikube.
home = Path(os.environ.get("MINIKUBE_HOME", str(Path.home())))
home = home if home.name == ".minikube" else home / ".minikube"
config = home / "profiles" / profile / "config.json"
host = state / "host"
verb = args[0] if args else ""
if verb == "status":
    if not host.exists():
        print(f'* Profile "{profile}" not found. Run "minikube profile list" to view all profiles.')
        sys.exit(85)
    print(host.read_text().strip())
    sys.exit(0 if host.read_text().strip() == "Running" else 7)
if verb == "delete":
    host.unlink(missing_ok=True)
    config.unlink(missing_ok=True)
    (state / "applied").unlink(missing_ok=True)
    print(f'* Deleting "{profile}" in docker ... (minikube STAND-IN)')
    sys.exit(0)
if verb == "addons":
    addons = json.loads((state / "addons").read_text()) if (state / "addons").exists() else {}
    if args[1] == "list":
        print(json.dumps({name: {"Profile": profile, "Status": status} for name, status in addons.items()}))
    elif args[1] in ("enable", "disable"):
        addons[args[2]] = "enabled" if args[1] == "enable" else "disabled"
        (state / "addons").write_text(json.dumps(addons))
        print(f"* The '{args[2]}' addon is {addons[args[2]]} (minikube STAND-IN)")
    sys.exit(0)
if verb == "start":
    gpus = flag("gpus")
    if gpus not in ("", "all", "nvidia", "nvidia.com", "amd"):
        print('X Exiting due to MK_USAGE: The gpus flag must be passed a value of "nvidia", "nvidia.com", "amd" or "all"')
        sys.exit(14)
    mount = flag("mount-string") if "--mount" in args else ""
    memory = flag("memory", "4000")
    number = int(re.match(r"[0-9]+", memory).group(0))
    memory_mb = number * 1024 if memory.lower().rstrip("b").endswith("g") else number
    if config.exists():
        saved = json.loads(config.read_text())
        old = (saved.get("ContainerVolumeMounts") or [""])[0]
        if mount and old != mount:
            print(f"X Exiting due to GUEST_MOUNT_CONFLICT: Sorry, docker does not allow mounts to be changed after "
                  f"container creation (previous mount: '{old}', new mount: '{mount}')")
            sys.exit(81)
        if memory_mb != saved["Memory"]:
            print("! You cannot change the memory size for an existing minikube cluster. Please first delete the cluster.")
        if int(flag("cpus", "2")) != saved["CPUs"]:
            print("! You cannot change the CPUs for an existing minikube cluster. Please first delete the cluster.")
    else:
        if gpus == "nvidia.com":
            spec = Path("@CDI_SPEC@")
            if not spec.exists():
                print("X Exiting due to GUEST_PROVISION: docker: Error response from daemon: CDI device injection "
                      "failed: unresolvable CDI devices nvidia.com/gpu=all (minikube STAND-IN)")
                sys.exit(80)
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({
            "Name": profile, "Memory": memory_mb, "CPUs": int(flag("cpus", "2")), "Driver": flag("driver"),
            "GPUs": gpus, "MountString": mount, "ContainerVolumeMounts": [mount] if mount else [],
            "KubernetesConfig": {"KubernetesVersion": flag("kubernetes-version"),
                                 "ContainerRuntime": flag("container-runtime")},
        }, indent=4))
        if gpus in ("all", "nvidia", "nvidia.com"):
            addons = json.loads((state / "addons").read_text()) if (state / "addons").exists() else {}
            addons["nvidia-device-plugin"] = "enabled"
            (state / "addons").write_text(json.dumps(addons))
    # pkg/minikube/kubeconfig: the cluster, user and context named after the profile, in $KUBECONFIG or
    # ~/.kube/config (other entries kept), and the current context switched to it.
    import yaml
    kubeconfig = Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    kc = (yaml.safe_load(kubeconfig.read_text()) if kubeconfig.exists() else None) or {"apiVersion": "v1", "kind": "Config"}
    for kind, entry in (("clusters", {"cluster": {"server": "https://127.0.0.1:32771", "certificate-authority": str(home / "ca.crt")}}),
                        ("users", {"user": {"client-certificate": str(home / "profiles" / profile / "client.crt"),
                                            "client-key": str(home / "profiles" / profile / "client.key")}}),
                        ("contexts", {"context": {"cluster": profile, "user": profile, "namespace": "default"}})):
        kc[kind] = [e for e in kc.get(kind) or [] if e.get("name") != profile] + [{"name": profile, **entry}]
    kc["current-context"] = profile
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(yaml.safe_dump(kc))
    host.write_text("Running\n")
    print("* Done! kubectl is now configured to use the cluster (minikube STAND-IN, no cluster)")
    sys.exit(0)
print("minikube version: v1.38.1 (STAND-IN)")
'''

KUBECTL = r'''#!@PYTHON@
"""STAND-IN kubectl (ai-eval-factory tests): the stand-in node's GPU as upstream documents it on each path."""
import json, re, sys
from pathlib import Path

state = Path("@STATE@")
args = sys.argv[1:]
with (state / "kubectl-calls").open("a") as log:
    log.write(" ".join(args) + "\n")
if (state / "host").read_text().strip() != "Running" if (state / "host").exists() else True:
    print("The connection to the server was refused (kubectl STAND-IN)", file=sys.stderr)
    sys.exit(1)
config_files = list(state.glob(".minikube/profiles/*/config.json")) + list(Path("@MINIKUBE_HOME@").glob("profiles/*/config.json"))
config = json.loads(config_files[0].read_text()) if config_files else {}
gpus = config.get("GPUs", "")
host_kind = (state / "gpu").read_text().strip() if (state / "gpu").exists() else "none"
addons = json.loads((state / "addons").read_text()) if (state / "addons").exists() else {}
applied = (state / "applied").read_text() if (state / "applied").exists() else ""
project_plugin = re.search(r"k8s-device-plugin:v(\d+)\.(\d+)\.(\d+)", applied)
spec = Path("@CDI_SPEC@")
plugin = None  # (version tuple, source)
if addons.get("nvidia-device-plugin") == "enabled":
    plugin = ((0, 18, 2), "addon")
if project_plugin:
    plugin = (tuple(int(n) for n in project_plugin.groups()), "project")


def node_gpu_and_log():
    if host_kind == "none" or not gpus:
        return 0, ["No devices found. Waiting indefinitely."] if plugin else []
    if plugin is None:
        return 0, []
    if host_kind == "linux":
        return 1, ["Detected platform: nvml", "Starting GRPC server for 'nvidia.com/gpu'"]
    # WSL2
    if gpus in ("all", "nvidia"):
        return 0, ["Failed to initialize NVML: Not Supported.",
                   "If this is a GPU node, did you set the docker default runtime to `nvidia`?",
                   "nvml init failed: Not Supported", "No devices found. Waiting indefinitely."]
    if "/usr/lib/wsl/lib/libdxcore.so" not in (spec.read_text() if spec.exists() else ""):
        return 0, ["Failed to initialize NVML: Not Supported.", "No devices found. Waiting indefinitely."]
    if plugin[0] < (0, 19, 1):
        return 0, ["Detected platform: wsl", "No devices found. Waiting indefinitely."]
    return 1, ["Detected platform: wsl", "Starting GRPC server for 'nvidia.com/gpu'"]


count, log = node_gpu_and_log()
if args[:2] == ["apply", "-f"] or (len(args) > 2 and args[1:3] == ["apply", "-f"]):
    path = args[args.index("-f") + 1]
    (state / "applied").write_text(applied + Path(path).read_text())
    print("daemonset.apps/nvidia-device-plugin-daemonset configured (kubectl STAND-IN)")
    sys.exit(0)
if "logs" in args:
    print("\n".join(f"I1203 09:00:00.000000       1 main.go:0] {line}" for line in log))
    sys.exit(0)
if "nodes" in args:
    print(str(count) if count else "")
    sys.exit(0)
print("kubectl STAND-IN: unhandled " + " ".join(args), file=sys.stderr)
sys.exit(1)
'''


def write(path: Path, text: str, **values: str) -> Path:
    for key, value in {"PYTHON": sys.executable, **values}.items():
        text = text.replace(f"@{key}@", value)
    path.write_text(text)
    path.chmod(0o755)
    return path
