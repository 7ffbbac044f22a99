"""The compose project the ci_stack role writes, rendered by Ansible, read against every file it must agree
with: the repository's frp/frpc.toml, the receiver's command line, jenkins/casc/*.yaml (secrets, whitelist,
agent), the Jenkinsfile's agent label. Each test fails when one side drifts.

What these files do at run time is Molecule's part (ansible/molecule/default/tests/test_ci_stack.py)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pipeline import ci_stack
from tests.pipeline.ci_stack import RenderedStack, option
from tests.pipeline.conftest import REPO

CASC_DIR = REPO / "jenkins" / "casc"
READ_FILE = re.compile(r"\$\{(?:readFile|readFileBase64):(/run/secrets/[A-Za-z0-9._-]+)\}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> RenderedStack:
    return ci_stack.render(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> RenderedStack:
    return ci_stack.render(
        tmp_path_factory.mktemp("cluster"),
        ci_stack_cluster_enabled=True,
        ci_stack_kubeconfig="apiVersion: v1\nkind: Config\n",
        ci_stack_registry="registry.example.org:5000",
        ci_stack_registry_user="ci",
        ci_stack_registry_password="render-registry-password-3456",
        ci_stack_portainer_enabled=False,
        ci_stack_bind_address="0.0.0.0",
    )


# 1. Only the webhook path reaches the receiver; Jenkins is never published beyond loopback.


def test_the_receiver_is_a_service_and_frpc_routes_only_the_webhook_path_to_it(stack: RenderedStack) -> None:
    assert {"jenkins", "agent", "receiver", "frpc"} <= set(stack.compose["services"])
    assert ci_stack.frpc_seam_problems((REPO / "frp" / "frpc.toml").read_text(), stack) == []
    receiver = stack.command("receiver")
    assert receiver[:1] == ["serve"]  # the receiver image's entrypoint is `release-receiver`
    assert option(receiver, "--host") == "172.30.240.10"  # its fixed address: frpc reaches it from its own namespace


def test_the_frpc_configuration_is_the_repository_file(stack: RenderedStack) -> None:
    source = stack.derived["sources"]["frpc_config"]
    assert Path(source["src"]).resolve() == REPO / "frp" / "frpc.toml"
    assert stack.mounts("frpc")[ci_stack.option(stack.command("frpc"), "-c")] == "./" + source["dest"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('trustedCaFile = "', 'trustedCaFile = "/elsewhere'),
        ('locations = ["/hooks/release"]', 'locations = ["/"]'),
        ("localPort = 8089", "localPort = 8080"),
        ("Envs.FRP_RECEIVER_ADDR", "Envs.FRP_RECEIVER_HOST"),
        ('type = "http"', 'type = "tcp"'),
        ('path = "/run/secrets/', 'path = "/etc/'),
        ('"HeartBeats", ', ""),
        ("FRP_SERVER_NAME", "FRP_TLS_NAME"),
    ],
)
def test_a_drift_between_frpc_toml_and_the_stack_is_caught(stack: RenderedStack, old: str, new: str) -> None:
    text = (REPO / "frp" / "frpc.toml").read_text()
    assert old in text, f"the drift check looks for {old!r} in frp/frpc.toml"
    assert ci_stack.frpc_seam_problems(text.replace(old, new, 1), stack) != []


@pytest.mark.parametrize("which", ["stack", "cluster_stack"])
def test_jenkins_is_never_published_beyond_loopback(which: str, request: pytest.FixtureRequest) -> None:
    rendered: RenderedStack = request.getfixturevalue(which)
    assert rendered.service("jenkins").get("ports") == ["127.0.0.1:8080:8080"]
    for name in ("agent", "receiver", "frpc"):
        assert not rendered.service(name).get("ports"), f"{name} publishes a port"
        assert rendered.service(name).get("network_mode") is None
    for service in rendered.compose["services"].values():
        assert service.get("network_mode") != "host"


# 7. Jenkins' whitelist admits exactly the receiver's address on the stack's network.


def casc_files(cluster: bool) -> list[Path]:
    return [CASC_DIR / "jenkins.yaml", *([CASC_DIR / "cluster.yaml"] if cluster else [])]


def whitelist_hosts() -> list[str]:
    casc = yaml.safe_load((CASC_DIR / "jenkins.yaml").read_text())
    return [item["host"] for item in casc["unclassified"]["whitelist"]["whitelistItems"]]


def test_the_whitelist_is_the_receivers_fixed_address_on_the_stack_network(stack: RenderedStack) -> None:
    (host,) = whitelist_hosts()
    match = re.fullmatch(r"\$\{([A-Z_]+)\}", host)
    assert match, f"the whitelist host must come from the stack (an environment reference), got {host!r}"
    address = ipaddress.ip_address(stack.environment("jenkins")[match.group(1)])
    (network,) = stack.compose["networks"].values()
    (ipam,) = network["ipam"]["config"]
    subnet = ipaddress.ip_network(ipam["subnet"])
    receiver_networks = stack.service("receiver")["networks"]
    (receiver_address,) = [ipaddress.ip_address(n["ipv4_address"]) for n in receiver_networks.values()]
    assert address == receiver_address and address in subnet
    # Not the bridge gateway: that is what every process on the host looks like through a published port.
    assert address != ipaddress.ip_address(ipam["gateway"])
    forward = option(stack.command("receiver"), "--forward-url")
    assert forward == "http://jenkins:8080/generic-webhook-trigger/invoke"
    assert set(stack.service("jenkins")["networks"]) == set(receiver_networks)


# 14. The project's own Jenkins image, its casc files, and exactly the secret files they read.


def casc_secret_paths(cluster: bool) -> set[str]:
    return {m for path in casc_files(cluster) for m in READ_FILE.findall(path.read_text())}


@pytest.mark.parametrize(("which", "cluster"), [("stack", False), ("cluster_stack", True)])
def test_jenkins_mounts_exactly_the_secret_files_its_casc_reads(
    which: str, cluster: bool, request: pytest.FixtureRequest
) -> None:
    rendered: RenderedStack = request.getfixturevalue(which)
    assert set(rendered.secrets("jenkins")) == casc_secret_paths(cluster)
    env = rendered.environment("jenkins")
    assert env["CASC_STRICT_SECRET_RESOLUTION"] == "true"
    configured = env["CASC_JENKINS_CONFIG"].split(",")
    mounts = rendered.mounts("jenkins")
    assert [Path(mounts[c]).name for c in configured] == [p.name for p in casc_files(cluster)]
    for container_path in configured:
        copied = stack_source(rendered, mounts[container_path])
        assert Path(copied["src"]).resolve() == CASC_DIR / Path(container_path).name


def stack_source(rendered: RenderedStack, host_path: str) -> dict[str, Any]:
    for source in rendered.derived["sources"].values():
        items = source if isinstance(source, list) else [source]
        for item in items:
            if "./" + item["dest"] == host_path:
                return dict(item)
    raise AssertionError(f"{host_path} is not a file the role copies from the repository")


def test_the_receiver_and_jenkins_share_the_forward_secret_files(stack: RenderedStack) -> None:
    receiver = stack.command("receiver")
    jenkins = stack.secrets("jenkins")
    receiver_files = {
        flag: option(receiver, flag) for flag in ("--secret-file", "--forward-secret-file", "--forward-token-file")
    }
    assert set(receiver_files.values()) == set(stack.secrets("receiver"))
    casc = (CASC_DIR / "jenkins.yaml").read_text()
    for flag, credential in (
        ("--forward-secret-file", "release-forward-hmac"),
        ("--forward-token-file", "release-gwt-token"),
    ):
        path = receiver_files[flag]
        # The same compose secret (one host file) is what casc reads for that credential.
        assert stack.secrets("receiver")[path] == jenkins[path]
        assert re.search(rf'id: "{credential}"[^-]*\$\{{trim:\$\{{readFile:{re.escape(path)}\}}\}}', casc), credential


def test_jenkins_is_the_project_image_built_from_the_repository(stack: RenderedStack) -> None:
    jenkins = stack.service("jenkins")
    assert not str(jenkins["image"]).startswith("jenkins/jenkins"), "a floating upstream image, not ours"
    context = stack_source(stack, jenkins["build"]["context"])
    assert Path(context["src"]).resolve() == REPO / "jenkins"
    assert jenkins["build"]["target"] == "controller"
    agent = stack.service("agent")
    assert agent["build"]["context"] == jenkins["build"]["context"] and agent["build"]["target"] == "agent"
    # The receiver is its own image, from its own context (receiver/): nothing of the evaluator goes in.
    receiver = stack.service("receiver")
    assert Path(stack_source(stack, receiver["build"]["context"])["src"]).resolve() == REPO / "receiver"
    assert "dockerfile" not in receiver["build"]  # receiver/Dockerfile, the context's own


def test_images_are_not_built_when_the_stack_is_told_so(tmp_path: Path) -> None:
    rendered = ci_stack.render(tmp_path, ci_stack_build_images=False)
    for name in ("jenkins", "agent", "receiver"):
        assert "build" not in rendered.service(name)


# 4. Builds run on the agent, next to the Docker socket; the controller has neither.


def test_builds_run_on_the_agent_and_only_the_agent_has_the_docker_socket(stack: RenderedStack) -> None:
    def has_socket(name: str) -> bool:
        return any(v.endswith(":/var/run/docker.sock") for v in stack.service(name).get("volumes", []))

    assert not has_socket("jenkins") and has_socket("agent")
    assert "${DOCKER_SOCKET_GID:?the docker socket's group id}" in stack.service("agent")["group_add"]
    casc = yaml.safe_load((CASC_DIR / "jenkins.yaml").read_text())
    (node,) = casc["jenkins"]["nodes"]
    ssh = node["permanent"]["launcher"]["ssh"]
    assert ssh["host"] == "agent"  # the compose service
    key = ssh["sshHostKeyVerificationStrategy"]["manuallyProvidedKeyVerificationStrategy"]["key"]
    path = READ_FILE.search(key).group(1)  # type: ignore[union-attr]
    assert path in stack.secrets("jenkins")
    # The agent's sshd is given the private half of that key, and the controller's key is the one it accepts.
    assert any(path.removesuffix(".pub") == p for p in stack.secrets("agent"))


def test_no_volume_of_the_controller_is_reachable_from_the_agent_or_its_containers(stack: RenderedStack) -> None:
    """jenkins_home holds every credential (and the key that decrypts them): it is the controller's alone. The
    agent mounts its own work volume and the socket; the containers builds start get no volume at all (the
    scripts copy files in and out with `docker cp`)."""

    def named(service: str) -> set[str]:
        return {
            str(v).split(":", 1)[0]
            for v in stack.service(service).get("volumes", [])
            if not str(v).startswith(("/", "."))
        }

    controller = named("jenkins")
    assert controller == {"jenkins_home"}
    for name in stack.compose["services"]:
        if name != "jenkins":
            assert not named(name) & controller, f"{name} mounts a volume of the controller"
            assert "volumes_from" not in stack.service(name), name
    assert named("agent") == {"agent_work"}
    mounts = re.compile(r"docker\b[^\n]*\s(-v|--volume|--mount|--volumes-from)[\s=]")
    for script in (REPO / "scripts" / "ci-pipeline").glob("*.sh"):
        for line in script.read_text().replace("\\\n", " ").splitlines():  # continuation lines joined
            assert not mounts.search(line), f"{script.name}: a build's container gets a volume: {line.strip()}"


def test_secret_files_are_private_and_readable_only_by_their_services(stack: RenderedStack) -> None:
    gid = stack.derived["secret_files"][0]["group"]
    by_name = {s["name"]: s for s in stack.derived["secret_files"]}
    for name in stack.compose["secrets"]:
        secret = by_name[name]
        assert secret["owner"] == "root" and secret["mode"] in ("0400", "0440", "0600")
        if secret["mode"] == "0440":
            readers = [s for s, svc in stack.compose["services"].items() if name in svc.get("secrets", [])]
            for reader in readers:
                assert str(secret["group"]) in [str(g) for g in stack.service(reader).get("group_add", [])], reader
    assert all(str(gid) == str(s["group"]) for s in stack.derived["secret_files"] if s["mode"] == "0440")
    for value in ci_stack.SECRET_VALUES.values():
        assert value not in stack.compose_text


# Issue 17: the receiver pins the repository and the release branch; frpc has its own network namespace (a restart
# of the receiver alone cannot cut the tunnel); health checks on both; Portainer only when asked, on loopback.


def test_the_receiver_pins_the_inventorys_repository_and_exact_release_branch(stack: RenderedStack) -> None:
    receiver = stack.command("receiver")
    # ci_stack_release_repo_url https://github.com/acme/ai-eval-factory.git -> the one repository it releases.
    assert [receiver[i + 1] for i, a in enumerate(receiver) if a == "--repository"] == ["acme/ai-eval-factory"]
    assert [receiver[i + 1] for i, a in enumerate(receiver) if a == "--release-branch"] == ["release"]
    assert "--release-branch-glob" not in receiver
    env = stack.environment("jenkins")
    assert (env["RELEASE_REPOSITORY"], env["RELEASE_BRANCH"], env["RELEASE_BRANCH_GLOBS"]) == (
        "acme/ai-eval-factory", "release", "",
    )  # fmt: skip


def test_release_branch_globs_are_an_explicit_opt_in(tmp_path: Path) -> None:
    rendered = ci_stack.render(tmp_path, ci_stack_release_branch_globs=["release/*"])
    receiver = rendered.command("receiver")
    assert option(receiver, "--release-branch-glob") == "release/*"
    assert rendered.environment("jenkins")["RELEASE_BRANCH_GLOBS"] == "release/*"


def test_frpc_has_its_own_namespace_and_reaches_the_receiver_at_its_fixed_address(stack: RenderedStack) -> None:
    frpc = stack.service("frpc")
    assert "network_mode" not in frpc, "sharing the receiver's namespace loses the tunnel on a receiver restart"
    assert set(frpc["networks"]) == set(stack.service("receiver")["networks"])
    (address,) = [n["ipv4_address"] for n in stack.service("receiver")["networks"].values()]
    assert option(stack.command("receiver"), "--host") == address  # listens there, on that one address
    assert stack.environment("frpc")["FRP_RECEIVER_ADDR"] == address
    assert frpc["depends_on"] == {"receiver": {"condition": "service_healthy"}}
    for name in ("receiver", "frpc"):
        test = stack.service(name)["healthcheck"]["test"]
        assert test[0] == "CMD" and f"http://{address}:8089/healthz" in test, (name, test)
    assert stack.service("receiver")["healthcheck"]["test"][1:3] == ["release-receiver", "health"]


def test_portainer_is_off_unless_asked_and_then_on_loopback_only(stack: RenderedStack, tmp_path: Path) -> None:
    assert "portainer" not in stack.compose["services"]
    assert "portainer_admin_password" not in stack.compose.get("secrets", {})
    rendered = ci_stack.render(tmp_path, ci_stack_portainer_enabled=True)
    portainer = rendered.service("portainer")
    assert portainer["ports"] == ["127.0.0.1:9443:9443"]
    assert option(rendered.command("portainer"), "--admin-password-file") == "/run/secrets/portainer_admin_password"


def test_no_service_and_no_build_container_uses_the_host_network(stack: RenderedStack) -> None:
    for name, service in stack.compose["services"].items():
        assert service.get("network_mode") != "host", name
    # Every script of the pipeline (verify-evaluator-image.sh is this machine's image test, not a pipeline step).
    for script in (REPO / "scripts" / "ci-pipeline").glob("*.sh"):
        if script.name == "verify-evaluator-image.sh":
            continue
        assert "--network host" not in script.read_text() and "--net=host" not in script.read_text(), script.name
