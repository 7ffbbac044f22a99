"""Static check: every task that touches a secret has no_log, and no secret has a literal default.

A secret is a role option declared `no_log: true` in meta/argument_specs.yml, or any variable whose name ends
like a credential (_password, _token, _secret, _api_key). A task touches it when its text, or the template it
renders, names it. The Molecule test also greps the real converge output for the secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from ansible_harness import ANSIBLE_DIR

SECRET_NAME = re.compile(r"(_password|_token|_secret|_api_key)$")
BLOCK_KEYS = ("block", "rescue", "always")


def secret_names(ansible_dir: Path) -> set[str]:
    names: set[str] = set()
    for spec_file in ansible_dir.glob("roles/*/meta/argument_specs.yml"):
        specs = yaml.safe_load(spec_file.read_text())["argument_specs"]
        for entry in specs.values():
            for option, spec in (entry.get("options") or {}).items():
                if spec.get("no_log") or SECRET_NAME.search(option):
                    names.add(option)
    for defaults in ansible_dir.glob("roles/*/defaults/main.yml"):
        names.update(k for k in (yaml.safe_load(defaults.read_text()) or {}) if SECRET_NAME.search(k))
    return names


def iter_tasks(items: Any) -> Iterator[dict[str, Any]]:
    """Every task in a task list or play list, blocks flattened (a block's own no_log covers its tasks)."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        if "tasks" in item or "hosts" in item:  # a play
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from iter_tasks(item.get(section))
            continue
        if any(k in item for k in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                for task in iter_tasks(item.get(key)):
                    if item.get("no_log") is True and "no_log" not in task:
                        task = {**task, "no_log": True}
                    yield task
            continue
        yield item


def task_files(ansible_dir: Path) -> Iterator[Path]:
    yield from ansible_dir.glob("*.yml")
    yield from ansible_dir.glob("tasks/*.yml")
    yield from ansible_dir.glob("roles/*/tasks/*.yml")
    yield from ansible_dir.glob("roles/*/handlers/*.yml")


def violations(ansible_dir: Path, secrets: set[str]) -> list[str]:
    """`file: task name` for each task that names a secret (itself or via its template) without no_log."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(secrets))) + r")\b")
    found = []
    for path in task_files(ansible_dir):
        for task in iter_tasks(yaml.safe_load(path.read_text())):
            text = yaml.safe_dump(task)
            for module in ("ansible.builtin.template", "template"):
                src = (task.get(module) or {}).get("src") if isinstance(task.get(module), dict) else None
                if src:
                    template = path.parent.parent / "templates" / src
                    if template.exists():
                        text += template.read_text()
            if pattern.search(text) and task.get("no_log") is not True:
                found.append(f"{path.relative_to(ansible_dir)}: {task.get('name', '<unnamed>')}")
    return found


def test_secrets_are_known():
    # The check below is only as good as this list: the CI stack's two secrets must be in it.
    assert {"ci_stack_portainer_admin_password", "ci_stack_frpc_token"} <= secret_names(ANSIBLE_DIR)


def test_every_task_touching_a_secret_has_no_log():
    assert violations(ANSIBLE_DIR, secret_names(ANSIBLE_DIR)) == []


def test_secret_defaults_are_lookups_not_literals():
    for defaults in ANSIBLE_DIR.glob("roles/*/defaults/main.yml"):
        for name, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if SECRET_NAME.search(name):
                assert value in ("", None) or "lookup(" in str(value), f"{defaults}: {name} has a literal value"


def test_the_check_catches_a_task_without_no_log(tmp_path):
    # The checker must fail on the mistake it exists for, including a secret reached only through a template.
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "templates").mkdir()
    (role / "templates" / "conf.j2").write_text("token = {{ demo_api_token }}\n")
    (role / "tasks" / "main.yml").write_text(
        yaml.safe_dump(
            [
                {"name": "Leaks", "ansible.builtin.template": {"src": "conf.j2", "dest": "/x"}},
                {"name": "Guarded", "ansible.builtin.debug": {"msg": "{{ demo_api_token }}"}, "no_log": True},
                {
                    "block": [{"name": "In a guarded block", "ansible.builtin.debug": {"var": "demo_api_token"}}],
                    "no_log": True,
                },
                {"name": "Unrelated", "ansible.builtin.debug": {"msg": "hello"}},
            ]
        )
    )
    assert violations(tmp_path, {"demo_api_token"}) == ["roles/demo/tasks/main.yml: Leaks"]
