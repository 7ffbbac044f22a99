"""The Molecule stand-in for Jenkins (ansible/molecule/default/standins.jenkins.py), loaded as a module.

It is the project's one model of what JCasC does with the casc files (merging them, resolving `${...}`); the
static tests use the same functions the stand-in runs in the Molecule container, so the two cannot drift."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.pipeline.conftest import REPO

PATH = REPO / "ansible" / "molecule" / "default" / "standins.jenkins.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jenkins_standin", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


JENKINS = load()
