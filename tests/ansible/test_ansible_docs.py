"""Every role documents what it takes: defaults, argument specs and the README table name the same variables."""

from __future__ import annotations

import pytest
import yaml
from ansible_harness import ANSIBLE_DIR

ROLES = ["site", "wsl", "docker_engine", "nvidia_container_toolkit", "minikube", "k3s", "ci_stack"]
# roles/site holds only site.yml's defaults (no tasks), so that every inventory override wins over them.
ROLES_WITH_TASKS = [role for role in ROLES if role != "site"]


def test_the_roles_are_there():
    assert sorted(p.name for p in (ANSIBLE_DIR / "roles").iterdir() if p.is_dir()) == sorted(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_specs_and_readme_agree(role):
    base = ANSIBLE_DIR / "roles" / role
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text()) or {}
    options = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), "defaults/main.yml and meta/argument_specs.yml disagree"
    assert all(name.startswith(f"{role}_") for name in options), "role variables carry the role's prefix"
    readme = (base / "README.md").read_text()
    missing = [name for name in options if f"| `{name}` |" not in readme]
    assert not missing, f"README.md's variables table lacks {missing}"


@pytest.mark.parametrize("role", ROLES_WITH_TASKS)
def test_tasks_split_one_file_per_concern(role):
    tasks = ANSIBLE_DIR / "roles" / role / "tasks"
    files = {p.name for p in tasks.glob("*.yml")} - {"main.yml"}
    assert len(files) >= 2
    # Imported from main.yml, directly or through a file main.yml imports (ci_stack's preflight.yml, which the
    # site preflight also runs on its own).
    referenced, queue = set(), ["main.yml"]
    while queue:
        text = yaml.safe_dump(yaml.safe_load((tasks / queue.pop()).read_text()))
        for name in files - referenced:
            if name in text:
                referenced.add(name)
                queue.append(name)
    assert referenced == files, f"not imported from main.yml: {files - referenced}"


def test_model_cache_contract_is_documented():
    # GUIDE's contract with pulumi/: one variable, owned by vLLM's uid/gid 10002, mode 0775.
    for readme in (ANSIBLE_DIR / "roles" / "minikube" / "README.md", ANSIBLE_DIR / "README.md"):
        text = readme.read_text()
        assert "minikube_model_cache_dir" in text and "10002:10002" in text and "0775" in text, readme


def test_wsl_gpu_path_is_documented_with_its_upstream_sources():
    text = (ANSIBLE_DIR / "roles" / "minikube" / "README.md").read_text()
    assert "17654" in text and "1739" in text and "1699" in text and "nvidia.com" in text
    assert 'minikube_gpus: ""' in text and "docker run --gpus all" in text
