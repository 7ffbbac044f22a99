"""The package boundaries that a review found crossed, held by reading every module's imports.

Each rule names what it keeps apart and why; a rule that fails names the file and the import that broke it.
Imports are read from the source (top-level and inside functions alike), so nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

EVALUATOR = REPO / "evaluator"
MAX_LINES = 600
# Files above MAX_LINES today, each with why it may be, until the change that shrinks it is merged.
# A file leaves this list when it shrinks (the test below fails while it is listed but small).
OVERSIZED: dict[str, str] = {}


def _imports(path: Path) -> list[str]:
    """Every module that `path` imports, absolute, wherever the import statement stands."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)} imports {name}"
        for path in files
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_evaluator_imports_neither_the_release_receiver_nor_host_diagnostics() -> None:
    """The receiver and the host checks are operations code: the evaluator's wheel and image carry neither."""
    forbidden = ("release_receiver", "receiver", "evaluator.webhook", "evaluator.doctor", "doctor")
    files = [p for p in _python_files(EVALUATOR) if p.name != "doctor.py"]
    assert _offenders(files, forbidden) == []


def test_the_file_formats_do_not_import_the_suite_schema() -> None:
    """Result, manifest and report files outlive the suite file that made them: the format must not follow it."""
    formats = [EVALUATOR / "contract.py", EVALUATOR / "policy.py", *_python_files(EVALUATOR / "formats")]
    assert _offenders(formats, ("evaluator.suite", "evaluator.dataset", "evaluator.engine")) == []


def test_the_engine_and_the_run_options_do_not_import_each_other() -> None:
    """The engine runs a shard it is handed; the options describe and plan a run. `prepared_shard` joins them
    from above, so neither depends on the other (and `options` never reaches back up into the package's API)."""
    engine = _python_files(EVALUATOR / "engine")
    assert _offenders(engine, ("evaluator.options", "evaluator.planning", "evaluator.local_workers")) == []
    options = [EVALUATOR / "options.py"]
    assert _offenders(options, ("evaluator.engine",)) == []
    assert "evaluator" not in _imports(EVALUATOR / "options.py"), "options imports the package's __init__"


def _long_files() -> dict[str, int]:
    files = [*_python_files(EVALUATOR), *_python_files(REPO / "pulumi" / "factory")]
    lengths = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in files}
    return {name: n for name, n in lengths.items() if n > MAX_LINES}


def test_no_module_is_longer_than_one_sitting() -> None:
    """A module is read whole before it is changed: above ~600 lines it holds more than one concern."""
    unexpected = {name: n for name, n in _long_files().items() if name not in OVERSIZED}
    assert unexpected == {}, f"split these by concern (at most {MAX_LINES} lines): {unexpected}"


def test_every_listed_exception_is_still_oversized() -> None:
    """The exceptions list shrinks with the code: a file that was split leaves it, so it cannot grow back unseen."""
    shrunk = sorted(name for name in OVERSIZED if name not in _long_files())
    assert shrunk == [], f"{shrunk}: {MAX_LINES} lines or fewer now, remove from OVERSIZED"
