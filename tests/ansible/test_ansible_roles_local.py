"""Role logic that Molecule's container cannot reach (WSL, Docker Desktop, a driver's CUDA version), run for real.

Each test runs a role, or one of its task files, against this machine with a local connection; every path the
role would touch is pointed into a temporary folder, and anything that could change this machine runs in check
mode. The WSL markers, Docker Desktop's mounts, nvidia-smi and docker are stand-in files there.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_harness import ANSIBLE_DIR, play_locally, recap

ROLE_PLAY = """\
- name: Role against this machine
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  roles:
    - role: {role}
"""

TASKS_PLAY = """\
- name: Part of a role against this machine
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  environment:
    PATH: "{{{{ stand_in_bin }}}}:{{{{ ansible_env.PATH }}}}"
  tasks:
    - name: Run the role's {tasks} tasks
      ansible.builtin.include_role:
        name: {role}
        tasks_from: {tasks}
    - name: Show the facts the tests read
      ansible.builtin.debug:
        msg: "install={{{{ nvidia_container_toolkit_install | default('unset') }}}}"
"""


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# --- wsl -----------------------------------------------------------------------------------------------------


@pytest.fixture
def wsl_vars(tmp_path: Path) -> dict[str, object]:
    """The wsl role believing it runs on WSL (an interop marker file), writing wsl.conf into tmp_path."""
    marker = tmp_path / "WSLInterop"
    marker.write_text("enabled\n")
    return {"wsl_interop_path": str(marker), "wsl_conf_path": str(tmp_path / "wsl.conf")}


def test_wsl_role_in_check_mode_reports_instead_of_failing(tmp_path, wsl_vars):
    result = play_locally(tmp_path, ROLE_PLAY.format(role="wsl"), wsl_vars, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "would change (check mode)" in result.stdout
    assert not Path(str(wsl_vars["wsl_conf_path"])).exists()


def test_wsl_role_stops_when_systemd_is_not_pid_1(tmp_path, wsl_vars):
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("PID 1 is systemd on this machine: the failure path cannot be shown here")
    # wsl.conf already as wanted (nothing to restart for), yet PID 1 is not systemd: the role must stop.
    defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / "wsl" / "defaults" / "main.yml").read_text())
    sections: dict[str, list[str]] = {}
    for entry in defaults["wsl_conf"]:
        sections.setdefault(entry["section"], []).append(f"{entry['option']}={entry['value']}")
    Path(str(wsl_vars["wsl_conf_path"])).write_text(
        "".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items())
    )
    result = play_locally(tmp_path, ROLE_PLAY.format(role="wsl"), wsl_vars)
    assert result.returncode != 0
    assert "systemd is not running as PID 1" in result.stdout
    assert "wsl --shutdown" in result.stdout


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("nvidia-driver-550", True),
        ("nvidia-dkms-550", True),
        ("cuda-drivers-550", True),
        ("nvidia-utils-550", True),  # shadows WSL's nvidia-smi
        ("libnvidia-compute-550", True),  # shadows WSL's libcuda
        ("nvidia-container-toolkit", False),
        ("nvidia-container-toolkit-base", False),
        ("libnvidia-container1", False),
        ("libnvidia-container-tools", False),
    ],
)
def test_wsl_driver_guard_patterns(package, forbidden):
    # The role applies them with Jinja's `match` test: re.match of one alternation.
    patterns = yaml.safe_load((ANSIBLE_DIR / "roles" / "wsl" / "defaults" / "main.yml").read_text())[
        "wsl_forbidden_package_patterns"
    ]
    assert bool(re.match("(" + "|".join(patterns) + ")", package)) is forbidden


# --- docker_engine ---------------------------------------------------------------------------------------------


def test_docker_engine_stops_on_docker_desktop(tmp_path):
    desktop = tmp_path / "mnt-wsl" / "docker-desktop"
    (desktop / "cli-tools" / "usr" / "bin").mkdir(parents=True)
    cli = executable(desktop / "cli-tools" / "usr" / "bin" / "docker", "#!/bin/sh\n")
    link = tmp_path / "usr-bin-docker"
    link.symlink_to(cli)
    variables = {"docker_engine_desktop_paths": [str(link)], "docker_engine_users": []}
    # Check mode: if the guard ever let this through, nothing on this machine would change.
    result = play_locally(tmp_path, ROLE_PLAY.format(role="docker_engine"), variables, "--check")
    assert result.returncode != 0
    assert "Docker Desktop's WSL integration is on" in result.stdout
    assert "Nothing was changed" in result.stdout


def test_a_user_new_to_the_docker_group_is_told_to_open_a_new_terminal(tmp_path):
    # A group applies to new logins only: the admin's open shell still gets "permission denied" from the socket.
    # Check mode on this machine (its docker group exists; nobody is not in it): nothing is changed.
    variables = {"docker_engine_users": ["nobody"], "stand_in_bin": str(tmp_path)}
    result = play_locally(tmp_path, TASKS_PLAY.format(role="docker_engine", tasks="users.yml"), variables, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    text = " ".join(result.stdout.split())
    assert "nobody" in text and "open a new terminal" in text and "newgrp docker" in text


NVIDIA_CTK = ANSIBLE_DIR / "molecule" / "vendor-repos" / "standins" / "nvidia-ctk"


def test_daemon_json_is_not_rewritten_after_nvidia_ctk(tmp_path):
    # The real order on a GPU host: docker_engine writes daemon.json, nvidia-ctk adds its runtime in its own
    # layout, docker_engine runs again. The second run must change nothing (a rewrite restarts Docker and, with
    # it, the minikube node).
    daemon_json = tmp_path / "docker" / "daemon.json"
    variables = {
        "docker_engine_daemon_json_path": str(daemon_json),
        # A Docker kept stopped is never restarted, so no handler touches this machine's services.
        "docker_engine_service_state": "stopped",
        "stand_in_bin": str(tmp_path / "bin"),
    }
    (tmp_path / "bin").mkdir()
    playbook = TASKS_PLAY.format(role="docker_engine", tasks="daemon_json.yml")
    first = play_locally(tmp_path, playbook, variables)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)["changed"] >= 1
    configure = subprocess.run(
        [str(NVIDIA_CTK), "runtime", "configure", "--runtime=docker", f"--config={daemon_json}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Wrote updated config" in configure.stdout
    written = daemon_json.read_bytes()
    assert json.loads(written)["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}

    second = play_locally(tmp_path, playbook, variables)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-4000:]
    assert daemon_json.read_bytes() == written


# --- nvidia_container_toolkit ------------------------------------------------------------------------------------


def test_gpu_probe_runs_in_check_mode(tmp_path):
    smi = executable(tmp_path / "bin" / "nvidia-smi", "#!/bin/sh\necho 'GPU 0: STAND-IN GPU (UUID: GPU-0)'\n")
    variables = {"nvidia_container_toolkit_smi_paths": [str(smi)], "stand_in_bin": str(tmp_path / "bin")}
    playbook = TASKS_PLAY.format(role="nvidia_container_toolkit", tasks="detect.yml")
    result = play_locally(tmp_path, playbook, variables, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    # Check mode on a GPU host must take the install path, not claim there is no GPU.
    assert "install=True" in result.stdout, result.stdout[-4000:]


# A driver of the R535 series supports CUDA up to 12.2. Like the toolkit's hook, this stand-in docker refuses an
# image whose NVIDIA_REQUIRE_CUDA asks for more, unless NVIDIA_DISABLE_REQUIRE is set.
DOCKER_R535 = """#!/bin/sh
# STAND-IN docker: the toolkit's CUDA requirement check of a driver that supports CUDA 12.2.
case " $* " in
  *" NVIDIA_DISABLE_REQUIRE=true "*) ;;
  *" nvidia/cuda:12.6"*|*" nvidia/cuda:12.8"*)
    echo 'nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.6, please update your driver' >&2
    exit 125 ;;
esac
echo 'GPU 0: STAND-IN GPU (UUID: GPU-0)'
"""


def test_gpu_smoke_test_does_not_demand_a_newer_driver(tmp_path):
    executable(tmp_path / "bin" / "docker", DOCKER_R535)
    variables = {"stand_in_bin": str(tmp_path / "bin")}
    playbook = TASKS_PLAY.format(role="nvidia_container_toolkit", tasks="smoke.yml")
    result = play_locally(tmp_path, playbook, variables)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "GPU visible in Docker" in result.stdout


# --- stale apt sources ------------------------------------------------------------------------------------------

STALE_SOURCES = {
    "docker_engine": {
        "url": "https://download.docker.com/linux/debian",
        "own": "docker.sources",
        "stale": {
            # Docker's install guide, apt_repository's generated name, and any name an admin chose.
            "docker.list": "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] URL bookworm stable\n",
            "download_docker_com_linux_debian.list": "deb [arch=amd64] URL bookworm stable\n",
            "my-docker-ce.list": "deb URL/ bookworm stable\n",
            "old-docker.sources": "Types: deb\nURIs: URL\nSuites: bookworm\nComponents: stable\n",
        },
        "kept": {
            "other.list": "deb https://deb.debian.org/debian bookworm main\n",
            "commented.list": "# deb URL bookworm stable\n",
            "docker-ubuntu.list": "deb https://download.docker.com/linux/ubuntu jammy stable\n",
        },
    },
    "nvidia_container_toolkit": {
        "url": "https://nvidia.github.io/libnvidia-container",
        "own": "nvidia-container-toolkit.sources",
        "stale": {
            "nvidia-container-toolkit.list": "deb [signed-by=/usr/share/keyrings/k.gpg] URL/stable/deb/$(ARCH) /\n",
            "libnvidia.list": "deb URL/stable/ubuntu18.04/$(ARCH) /\n",
            "my-gpu.list": "deb URL/experimental/deb/$(ARCH) /\n",
        },
        "kept": {"other.list": "deb https://deb.debian.org/debian bookworm main\n"},
    },
}


@pytest.mark.parametrize("role", sorted(STALE_SOURCES))
def test_stale_sources_are_found_by_what_they_name_not_by_file_name(tmp_path, role):
    # An earlier manual install names the vendor's repository under any file name; next to the role's own
    # .sources apt stops with "Conflicting values set for option Signed-By". Every file naming the repository
    # goes, whatever it is called; the role's own file, other repositories and comments stay.
    case = STALE_SOURCES[role]
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    files = {**case["stale"], **case["kept"], case["own"]: "Types: deb\nURIs: URL\n"}
    for name, text in files.items():
        (sources / name).write_text(text.replace("URL", case["url"]))
    url_var = "docker_engine_repo_url" if role == "docker_engine" else "nvidia_container_toolkit_repo_base_url"
    variables = {
        f"{role}_apt_sources_dir": str(sources),
        url_var: case["url"],
        "stand_in_bin": str(tmp_path),
    }
    result = play_locally(tmp_path, TASKS_PLAY.format(role=role, tasks="stale_sources.yml"), variables)
    assert result.returncode == 0, result.stdout[-4000:]
    assert sorted(p.name for p in sources.iterdir()) == sorted([*case["kept"], case["own"]])
    again = play_locally(tmp_path, TASKS_PLAY.format(role=role, tasks="stale_sources.yml"), variables)
    assert recap(again.stdout)["changed"] == 0


# --- the interpreter of deb822_repository --------------------------------------------------------------------------


def test_deb822_repository_runs_where_apt_installed_python3_debian():
    # The local inventory runs modules with the project's virtualenv Python, which has no python3-debian; the
    # roles install it with apt into the system Python, so the module must run there (Molecule runs this path
    # with a virtualenv interpreter for real).
    tasks = [
        task
        for path in ANSIBLE_DIR.glob("roles/*/tasks/*.yml")
        for task in yaml.safe_load(path.read_text()) or []
        if "ansible.builtin.deb822_repository" in task
    ]
    assert len(tasks) == 2
    for task in tasks:
        assert task.get("vars", {}).get("ansible_python_interpreter", "").endswith("_apt_python }}"), task["name"]


# --- issue 19: the admin journey's smaller defects ------------------------------------------------------------------


def test_docker_desktops_shared_tmpfs_alone_is_not_a_stop(tmp_path):
    # /mnt/wsl/docker-desktop is a tmpfs every WSL distribution sees while Docker Desktop runs on Windows: with its
    # integration off for this distribution (no link into it here), Docker Engine can be installed.
    shared = tmp_path / "mnt-wsl" / "docker-desktop"
    (shared / "cli-tools" / "usr" / "bin").mkdir(parents=True)
    plain_cli = executable(tmp_path / "usr-bin-docker", "#!/bin/sh\nexit 1\n")  # not a link into Docker Desktop
    variables = {"docker_engine_desktop_paths": [str(shared), str(plain_cli)], "stand_in_bin": str(tmp_path / "bin")}
    (tmp_path / "bin").mkdir()
    playbook = TASKS_PLAY.format(role="docker_engine", tasks="desktop.yml")
    result = play_locally(tmp_path, playbook, variables)
    assert result.returncode == 0, result.stdout[-4000:]


def test_wsl_conf_is_minimal_by_default():
    defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / "wsl" / "defaults" / "main.yml").read_text())
    assert defaults["wsl_conf"] == [{"section": "boot", "option": "systemd", "value": "true"}]


@pytest.mark.parametrize(
    ("version", "wsl", "refused"),
    [("1.19.1-1", True, True), ("1.19.1-1", False, False), ("1.20.0-1", True, False), ("", False, True)],
)
def test_toolkit_pin_refuses_the_wsl_regression(tmp_path, version, wsl, refused):
    variables = {
        "nvidia_container_toolkit_version": version,
        "factory_host_is_wsl": wsl,
        "stand_in_bin": str(tmp_path / "bin"),
    }
    (tmp_path / "bin").mkdir()
    result = play_locally(tmp_path, TASKS_PLAY.format(role="nvidia_container_toolkit", tasks="validate.yml"), variables)
    assert (result.returncode != 0) is refused, result.stdout[-3000:]
    if refused and wsl:
        assert "1.19" in result.stdout and "1.20.0" in result.stdout


def test_toolkit_pins_all_four_packages_at_one_version():
    defaults = yaml.safe_load(
        (ANSIBLE_DIR / "roles" / "nvidia_container_toolkit" / "defaults" / "main.yml").read_text()
    )
    assert set(defaults["nvidia_container_toolkit_packages"]) == {
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
        "libnvidia-container-tools",
        "libnvidia-container1",
    }
    assert re.match(r"^1\.20\.\d+-\d+$", defaults["nvidia_container_toolkit_version"])
    docker = yaml.safe_load((ANSIBLE_DIR / "roles" / "docker_engine" / "defaults" / "main.yml").read_text())
    assert {"docker-ce", "containerd.io"} <= set(docker["docker_engine_versions"]) and docker["docker_engine_hold"]


def test_the_toolkits_runtime_change_reloads_docker_instead_of_stopping_the_cluster():
    # dockerd reloads `runtimes` on SIGHUP (moby daemon/reload.go): a restart would also stop the minikube node.
    handlers = yaml.safe_load(
        (ANSIBLE_DIR / "roles" / "nvidia_container_toolkit" / "handlers" / "main.yml").read_text()
    )
    assert [h["ansible.builtin.systemd_service"]["state"] for h in handlers] == ["reloaded"]


def test_kept_secrets_and_secret_writes_name_the_same_variables():
    # kept_secrets.yml reads a file back into the variable secrets.yml writes it from: the two maps must agree.
    kept = yaml.safe_load((ANSIBLE_DIR / "roles" / "ci_stack" / "vars" / "main.yml").read_text())
    tasks = yaml.safe_load((ANSIBLE_DIR / "roles" / "ci_stack" / "tasks" / "secrets.yml").read_text())
    [write] = [t for t in tasks if "ci_stack_given_secrets" in t.get("vars", {})]
    written = {
        item["name"]: re.search(r"\{\{\s*(\w+)\s*\}\}", item["value"]).group(1)
        for item in write["vars"]["ci_stack_given_secrets"]
    }
    assert kept["ci_stack_given_secret_vars"] == written


# --- ci_stack ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compose", "refused"),
    [
        # Debian 12's docker.io with only the classic docker-compose: the CLI knows no "compose" command.
        ("echo \"docker: 'compose' is not a docker command.\" >&2; exit 1", True),
        ("echo 2.17.3", True),  # older than docker_compose_v2's MINIMUM_COMPOSE_VERSION
        ("echo 2.26.1-4", False),  # Debian 13's compose v2, the Molecule instance's
    ],
)
def test_the_ci_stack_requires_the_compose_v2_plugin_docker_compose_v2_drives(tmp_path, compose, refused):
    import socket

    bin_dir = tmp_path / "bin"
    executable(
        bin_dir / "docker",
        f'#!/bin/sh\n# STAND-IN docker CLI\n[ "$1 $2" = "compose version" ] && {{ {compose}; }}\nexit 0\n',
    )
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "docker.sock"))
    try:
        variables = {"stand_in_bin": str(bin_dir), "ci_stack_docker_socket": str(tmp_path / "docker.sock")}
        result = play_locally(tmp_path, TASKS_PLAY.format(role="ci_stack", tasks="discover.yml"), variables)
    finally:
        sock.close()
    text = " ".join(result.stdout.split())
    if refused:
        assert result.returncode != 0
        assert "needs the Docker Compose v2 plugin, 2.18.0 or newer" in text
    else:
        assert result.returncode == 0, result.stdout[-3000:]


def test_the_compose_project_is_driven_by_docker_compose_v2_not_by_output_wording():
    tasks = yaml.safe_load((ANSIBLE_DIR / "roles" / "ci_stack" / "tasks" / "up.yml").read_text())
    by_name = {task["name"]: task for task in tasks}
    for name in ("Start the compose project", "Restart the services whose secrets or configuration changed"):
        assert "community.docker.docker_compose_v2" in by_name[name], name
        assert "changed_when" not in by_name[name], name
