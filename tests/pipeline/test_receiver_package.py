"""The release receiver is its own product: its own distribution, console script and image, and the evaluator's
wheel and image carry none of it (issue 21). Nothing of one package imports the other.

The images themselves are built in test_evaluator_image.py (scripts/ci-pipeline/verify-evaluator-image.sh checks
that neither image holds the other's code); here the wheels are built for real, offline, from the two
pyproject.toml files."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.pipeline.conftest import REPO

RECEIVER = REPO / "receiver"


def build_wheel(source: Path, out: Path) -> list[str]:
    """The file names inside the wheel pip builds from `source` (no index, no build isolation: offline)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


@pytest.mark.slow
def test_the_evaluator_wheel_carries_no_receiver_code(tmp_path: Path) -> None:
    names = build_wheel(REPO, tmp_path / "evaluator")
    assert any(name.startswith("evaluator/") for name in names)
    receiver = [n for n in names if n.startswith(("release_receiver/", "evaluator/webhook/")) or "receiver" in n]
    assert receiver == [], f"the evaluator's wheel carries the receiver: {receiver}"
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    assert (
        "release-receiver"
        not in zipfile.ZipFile(next((tmp_path / "evaluator").glob("*.whl"))).read(entry_points).decode()
    )


@pytest.mark.slow
def test_the_receiver_wheel_is_the_receiver_alone_with_its_console_script(tmp_path: Path) -> None:
    names = build_wheel(RECEIVER, tmp_path / "receiver")
    packages = {name.split("/", 1)[0] for name in names if "/" in name and ".dist-info/" not in name}
    assert packages == {"release_receiver"}, packages
    wheel = next((tmp_path / "receiver").glob("*.whl"))
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "release-receiver = release_receiver.cli:main" in text


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def test_neither_package_imports_the_other() -> None:
    evaluator = {f: {m for m in mods if m.split(".")[0] == "release_receiver" or m.startswith("evaluator.webhook")}
                 for f, mods in imported_modules(REPO / "evaluator").items()}  # fmt: skip
    assert not any(evaluator.values()), {f: m for f, m in evaluator.items() if m}
    receiver = {f: {m for m in mods if m.split(".")[0] == "evaluator"}
                for f, mods in imported_modules(RECEIVER / "release_receiver").items()}  # fmt: skip
    assert not any(receiver.values()), {f: m for f, m in receiver.items() if m}
    assert not (REPO / "evaluator" / "webhook").exists()


def test_the_receiver_image_pins_what_the_repository_pins() -> None:
    """receiver/ is the image's whole build context, so it carries its own pins: they must equal constraints.txt's."""

    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(line.split("==", 1) for line in lines if "==" in line)

    receiver, repository = pins(RECEIVER / "constraints.txt"), pins(REPO / "constraints.txt")
    assert receiver, "receiver/constraints.txt pins nothing"
    assert {name: repository.get(name) for name in receiver} == receiver


def test_the_console_script_and_the_old_name() -> None:
    script = Path(sys.executable).parent / "release-receiver"
    assert script.exists(), "release-receiver is not installed: scripts/bootstrap.sh installs receiver/ editable"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and all(c in done.stdout for c in ("serve", "verify", "sign")), done.stdout
    # `evaluator webhook` was the old name: it stops with a pointer, not "No such command" and not exit 0.
    old = subprocess.run(
        [sys.executable, "-m", "evaluator", "webhook", "serve"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert old.returncode == 2 and "release-receiver" in old.stderr and "Traceback" not in old.stderr, old.stderr
    listed = subprocess.run([sys.executable, "-m", "evaluator", "--help"], capture_output=True, text=True, timeout=60)
    assert "webhook" not in listed.stdout
