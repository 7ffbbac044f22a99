"""A run's suite, as the pods will see it: loaded by the evaluator's own loader, planned by the evaluator's own
plan (variants x selected cases), its dataset shipped beside it in the run's ConfigMap or baked into the image.
Bad input raises `SettingsError` naming the flag, the file and the field; no Pulumi import."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from factory.settings import DATASET_KEY, DNS_LABEL, RUN_ID_MAX, RunSettings, SettingsError, SuiteFile

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
# A ConfigMap (data + metadata) must stay under etcd's 1 MiB object limit; keep room for the metadata.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024
CONFIGMAP_METADATA_ROOM = 16 * 1024


def make_run(
    run_id: str,
    commit: str,
    suite_path: Path,
    suite_in_image: str | None = None,
    profile: str | None = None,
    profile_source: str = "--profile",
) -> RunSettings:
    """Validate one run: its id names Kubernetes objects (a DNS label); its suite must load as the evaluator
    loads it (the files it names travel with it in the run's ConfigMap, or in the image), and its profile must be
    one of the suite's. The evaluator's own plan of the run gives the variants and the units the shards split."""
    if not DNS_LABEL.match(run_id) or len(run_id) > RUN_ID_MAX:
        raise SettingsError(
            f"--run-id: {run_id!r} must be lowercase letters, digits and '-', at most {RUN_ID_MAX} characters"
        )
    if not _COMMIT.match(commit):
        raise SettingsError(f"--commit: {commit!r} must be a git commit hash (7 to 40 lowercase hex digits)")
    if suite_in_image is not None and not suite_in_image.startswith("/"):
        raise SettingsError(f"--suite-in-image: {suite_in_image!r} must be an absolute path inside the image")
    try:
        text = suite_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--suite: {suite_path}: {exc.strerror or exc}") from exc
    loaded = _load_suite(suite_path)
    planned = _plan(loaded, profile, profile_source)
    return RunSettings(
        run_id=run_id,
        commit=commit,
        suite_text=text,
        suite_source=str(suite_path),
        files=() if suite_in_image else suite_files(suite_path, text, loaded),
        suite_in_image=suite_in_image,
        profile=profile,
        variants=tuple(planned.variants),
        reference=loaded.suite.reference,
        units=len(planned.units),
        many_shards=planned.shard_count("many"),
    )


def _load_suite(suite_path: Path) -> Any:
    """The evaluator's own loader (a suite it would reject is refused here), without environment overrides: the
    pods set their own endpoints. With --suite-in-image the local suite is the folder baked into the image."""
    from evaluator.errors import InputError
    from evaluator.suite import load_suite

    try:
        return load_suite(suite_path, environ={})
    except InputError as exc:
        raise SettingsError(f"--suite: {exc.message}") from None


def _plan(loaded: Any, profile: str | None, source: str) -> Any:
    """evaluator.plan_run: the profile's cases x the variants, checked against the metrics."""
    from evaluator.errors import InputError
    from evaluator.planning import plan_run

    try:
        return plan_run(loaded, profile=profile)
    except InputError as exc:
        where = source if profile is not None and exc.message.startswith("unknown profile") else "--suite"
        raise SettingsError(f"{where}: {exc.message}") from None


def suite_files(suite_path: Path, text: str, loaded: Any = None) -> tuple[SuiteFile, ...]:
    """The dataset the suite names, checked by the evaluator's own loader, to ship beside the suite.

    A ConfigMap volume can place a key at a nested path but never outside the mount, and the whole object
    must stay under 1 MiB: both are refused here, naming the file, instead of a pod failing later.
    """
    if loaded is None:
        loaded = _load_suite(suite_path)
    relative = posixpath.normpath(loaded.suite.dataset.replace("\\", "/"))
    if relative.startswith("/") or relative == ".." or relative.startswith("../"):
        raise SettingsError(
            f"--suite: {suite_path}: dataset: {loaded.suite.dataset!r} is outside the suite's folder; the run's "
            "ConfigMap mounts the suite's folder only. Move the dataset beside (or below) the suite."
        )
    data = loaded.dataset_path.read_bytes()
    try:
        dataset_text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"--suite: {loaded.dataset_path}: not UTF-8 text (JSONL, CSV or JSON)") from None
    size = len(text.encode()) + len(data) + CONFIGMAP_METADATA_ROOM
    if size > CONFIGMAP_LIMIT_BYTES:
        raise SettingsError(
            f"--suite: {loaded.dataset_path}: {len(data):,} bytes; with the suite the run's ConfigMap would "
            f"exceed Kubernetes' 1 MiB object limit. Bake the suite folder into the run's image and render with "
            f"--suite-in-image PATH (pulumi/README.md, 'Large datasets')."
        )
    return (SuiteFile(key=DATASET_KEY, path=relative, text=dataset_text),)
