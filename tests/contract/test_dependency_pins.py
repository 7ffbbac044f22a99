"""DeepEval's private methods are no contract: where the evaluator calls one, pyproject.toml pins DeepEval's minor
version (a minor release may rename or reshape it), and constraints.txt pins a version inside that range."""

from __future__ import annotations

import ast
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.helpers import REPO


def _private_calls(source: str) -> list[tuple[int, str]]:
    """`x._name(...)` calls on anything but `self`/`cls`/`super()` (the engine's own objects use no private
    attributes of each other, so what is left is DeepEval's: metrics, test cases, models)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, owner = node.func.attr, node.func.value
        if not name.startswith("_") or name.startswith("__") or name == "_replace":  # _replace: namedtuple's API
            continue
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls", "other"):
            continue
        found.append((node.lineno, name))
    return found


def _private_deepeval_calls() -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in sorted((REPO / "evaluator" / "engine").glob("*.py"))
        for line, name in _private_calls(path.read_text(encoding="utf-8"))
    ]


def _requirement(name: str) -> Requirement:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return next(r for r in map(Requirement, project["dependencies"]) if r.name == name)


def _pinned(name: str) -> Version:
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}=="):
            return Version(line.split("==", 1)[1])
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def test_deepeval_minor_is_pinned_while_a_private_method_is_called() -> None:
    requirement, pinned = _requirement("deepeval"), _pinned("deepeval")
    assert pinned in requirement.specifier, f"constraints.txt pins {pinned}, outside {requirement}"
    if not _private_deepeval_calls():
        return
    next_minor = Version(f"{pinned.major}.{pinned.minor + 1}")
    assert next_minor not in requirement.specifier, (
        f"{requirement} admits DeepEval {next_minor}, but the engine calls private methods: "
        f"{'; '.join(_private_deepeval_calls())}"
    )


def test_the_scan_sees_a_private_call_and_ignores_the_engines_own() -> None:
    """A test that cannot fail is a defect: the scan finds a call like G-Eval's step generation."""
    source = (
        "async def f(metric, parts):\n"
        "    steps = await metric._a_generate_evaluation_steps(False)\n"
        "    self._write(steps)\n"
        "    parts._replace(netloc='h')\n"
    )
    assert _private_calls(source) == [(2, "_a_generate_evaluation_steps")]
