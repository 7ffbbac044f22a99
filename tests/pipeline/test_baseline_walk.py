"""The Baseline seam walked: what one build archives, what the next build's `copyArtifacts` copies back, and what
gate.sh then reads as `--baseline`.

The pattern strings come from the Jenkinsfile itself (archiveArtifacts, copyArtifacts' filter and target, the
BASELINE_REPORT environment entry), so the walk fails when the Jenkinsfile and the report format drift apart (e.g.
report v5's cases sidecar missing from the filter: the gate would then refuse the baseline).

Stand-in: the two artifact steps are modelled on Jenkins core's `ArtifactArchiver` and the Copy Artifact plugin's
`CopyArtifact` (1.x), both of which hand their comma-separated pattern string to Ant's `DirectoryScanner`
(`FilePath.copyRecursiveTo(includes, excludes, target)`): each pattern is trimmed, `**` spans directories, `*`
and `?` stay inside one path segment, and a copied file keeps its path relative to the archive under `target`
(`flatten: false`, the default).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.conftest import REPO
from tests.pipeline.test_ci_scripts import real_report, run

JENKINSFILE = (REPO / "Jenkinsfile").read_text()
# The suite gates a regression against a baseline (without a tolerance the gate would not read the baseline at all).
REGRESSION_GATE: dict[str, object] = {"min_pass_rate": 0.5, "regression_tolerance": 0.05}


def _ant_regex(pattern: str) -> re.Pattern[str]:
    """One Ant include pattern as a regex over '/'-separated relative paths (a trailing '/' means '/**')."""
    if pattern.endswith("/"):
        pattern += "**"
    segments = pattern.split("/")
    out = ""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out += "(?:[^/]+/)*[^/]+" if last else "(?:[^/]+/)*"
            continue
        out += "".join("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in segment)
        out += "" if last else "/"
    return re.compile(out + r"\Z")


def ant_select(root: Path, patterns: str) -> list[str]:
    """The files under `root` that a comma-separated Ant include string selects, as relative paths."""
    compiled = [_ant_regex(p.strip()) for p in patterns.split(",") if p.strip()]
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return [f for f in files if any(c.match(f) for c in compiled)]


def copy_selected(source: Path, patterns: str, target: Path) -> list[str]:
    chosen = ant_select(source, patterns)
    for relative in chosen:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target / relative)
    return chosen


def test_the_ant_stand_in_selects_like_ant() -> None:
    """The stand-in's own check, against Ant's documented examples (ant.apache.org, Directory-based Tasks)."""
    assert _ant_regex("**/CVS/*").match("CVS/Repository") and _ant_regex("**/CVS/*").match("org/apache/CVS/Entries")
    assert not _ant_regex("**/CVS/*").match("org/apache/CVS/foo/bar/Entries")
    assert _ant_regex("org/apache/jakarta/**").match("org/apache/jakarta/tools/ant/docs/index.html")
    assert not _ant_regex("org/apache/jakarta/**").match("org/apache/xyz.java")
    assert _ant_regex("results/**").match("results/report.json") and _ant_regex("results/").match("results/a/b")
    assert not _ant_regex("results/report.json").match("results/report.json.bak")
    assert not _ant_regex("*.json").match("results/report.json")


def _jenkinsfile(pattern: str) -> str:
    found = re.search(pattern, JENKINSFILE, re.DOTALL)
    assert found, f"the Jenkinsfile no longer matches {pattern!r}"
    return found.group(1)


def _walk(tmp_path: Path, copy_filter: str) -> subprocess.CompletedProcess[str]:
    """Build N-1 (a green release, every case passing) archives; build N (a regression) copies its baseline back
    and runs gate.sh in block mode."""
    archived = _jenkinsfile(r"archiveArtifacts artifacts: '([^']+)'")
    target = _jenkinsfile(r"copyArtifacts\(.*?target: '([^']+)'")
    baseline = _jenkinsfile(r'BASELINE_REPORT = "\$\{WORKSPACE\}/([^"]+)"')

    previous = tmp_path / "build-41"
    previous_results = real_report(previous, passing=40, failing=0, run_id=previous.name, gate=REGRESSION_GATE)
    assert previous_results == previous / "results"
    archive = tmp_path / "archive-41"
    assert copy_selected(previous, archived, archive), "build 41 archived nothing"

    workspace = tmp_path / "workspace"
    current = real_report(workspace, passing=25, failing=15, run_id=workspace.name, gate=REGRESSION_GATE)
    assert (current / "report.cases.jsonl.gz").is_file(), "report v5 writes its cases beside the report"
    copied = copy_selected(archive, copy_filter, workspace / target)
    assert copied, f"copyArtifacts copied nothing of {sorted(ant_select(archive, '**'))}"
    assert (workspace / baseline).is_file(), f"BASELINE_REPORT points at {baseline}, the copy made {copied}"
    env = {"VENV": str(Path(sys.executable).parent.parent), "RESULTS_DIR": str(current), "GATE_MODE": "block",
           "BASELINE_REPORT": str(workspace / baseline)}  # fmt: skip
    return run("gate.sh", env=env, cwd=workspace)


def test_the_next_build_gates_against_what_the_last_green_one_archived(tmp_path: Path) -> None:
    copy_filter = _jenkinsfile(r"copyArtifacts\(.*?filter: '([^']+)'")
    done = _walk(tmp_path, copy_filter)
    results = tmp_path / "workspace" / "results"
    log = (results / "gate.log").read_text()
    assert done.returncode == 1, done.stdout + done.stderr
    assert (results / "gate-verdict").read_text().strip() == "fail"
    assert "could not read" not in done.stderr
    # 15 of 40 cases went from pass to fail against the baseline: the paired comparison decides it.
    assert "  - regression: default vs baseline build-41 default: pass rate" in log, log


@pytest.mark.parametrize("dropped", ["results/report.cases.jsonl.gz"])
def test_a_filter_without_the_cases_file_is_caught(tmp_path: Path, dropped: str) -> None:
    """The walk can fail: without report v5's sidecar the baseline cannot be read and the gate says so (exit 2)."""
    copy_filter = _jenkinsfile(r"copyArtifacts\(.*?filter: '([^']+)'")
    narrowed = ", ".join(p.strip() for p in copy_filter.split(",") if p.strip() != dropped)
    assert narrowed != copy_filter
    done = _walk(tmp_path, narrowed)
    assert done.returncode == 2 and "could not read" in done.stderr, done.stdout + done.stderr
