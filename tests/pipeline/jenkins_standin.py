"""The Molecule stand-in for Jenkins (ansible/molecule/default/standins.jenkins.py), loaded as a module.

It is the project's one model of what JCasC does with the casc files (merging them, resolving `${...}`); the
static tests use the same functions the stand-in runs in the Molecule container, so the two cannot drift."""

from __future__ import annotations

from tests.helpers import load_module
from tests.pipeline.conftest import REPO

PATH = REPO / "ansible" / "molecule" / "default" / "standins.jenkins.py"


JENKINS = load_module(PATH, "jenkins_standin")
