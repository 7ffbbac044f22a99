#!/usr/bin/env python3
"""Read what a Jenkins plugin release declares (its Plugin-Dependencies and Jenkins-Version) from its pom.xml.

No update center is reachable where jenkins/plugin-lock.json is maintained offline; what maven-hpi-plugin writes
into a release's MANIFEST comes from that release's pom.xml: the `<dependencies>` that are plugins (scope
compile/runtime; `<optional>true</optional>` ones as optional) at the versions the pom resolves, through its own
properties, the parent pom of a multi-module repository (`../pom.xml` at the same tag) and the jenkinsci/bom line
it imports (`io.jenkins.tools.bom:bom-<line>.x:<release>`, read from a bom clone at that release's tag), and
`jenkins.version`. The release is read at its git tag in a clone of the plugin's repository, so an entry made from
it is exact.

    plugin-pom-deps.py --repo DIR --tag TAG [--path plugin/pom.xml] --bom BOMDIR --plugins NAME,NAME,...

prints the entry as JSON (version, jenkins, requires, optional, source); `--plugins` names the artifacts that are
plugins (every other dependency is a library jar and is not a plugin dependency). A dependency whose version
cannot be resolved is an error, not a guess.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

NS = "{http://maven.apache.org/POM/4.0.0}"
PLUGIN_GROUPS = ("org.jenkins-ci.plugins", "io.jenkins.plugins", "io.jenkins", "org.jvnet.hudson.plugins")


class PomError(Exception):
    """The pom cannot be read to a definite answer (a missing file, an unresolved property or version)."""


def git_show(repo: Path, tag: str, path: str) -> str:
    result = subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"{tag}:{path}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PomError(f"{repo} {tag}:{path}: {result.stderr.strip()}")
    return result.stdout


def child(element: ET.Element, name: str) -> str | None:
    found = element.find(NS + name)
    return None if found is None or found.text is None else found.text.strip()


# Parent poms kept in a repository of their own, read at the tag of their version: `groupId:artifactId` -> the
# repository's directory next to the plugin's (mirrors are laid out as <mirror>/<owner>+<name>/repo).
# org.jenkins-ci.plugins:plugin (the plugin parent) manages no plugin and sets no BOM; analysis-pom (the parent of
# Ullrich Hafner's plugins) imports a BOM and sets jenkins.version for its children.
EXTERNAL_PARENTS = {"org.jvnet.hudson.plugins:analysis-pom": "jenkinsci+analysis-pom-plugin"}


class Pom:
    """One pom.xml with its parent chain: inside the same repository and tag, or a known parent's own repository."""

    def __init__(self, repo: Path, tag: str, path: str, release: str) -> None:
        self.repo, self.tag, self.path = repo, tag, path
        self.root = ET.fromstring(git_show(repo, tag, path))
        self.parent: Pom | None = None
        self.external = ""
        parent = self.root.find(NS + "parent")
        if parent is not None:
            relative = child(parent, "relativePath")
            if relative is None:
                relative = "../pom.xml"
            if relative:
                if not relative.endswith(".xml"):
                    relative = posixpath.join(relative, "pom.xml")
                parent_path = posixpath.normpath(posixpath.join(posixpath.dirname(path), relative))
                if not parent_path.startswith(".."):
                    try:
                        self.parent = Pom(repo, tag, parent_path, release)
                    except PomError:
                        self.parent = None
            key = f"{child(parent, 'groupId')}:{child(parent, 'artifactId')}"
            if self.parent is None and key in EXTERNAL_PARENTS:
                parent_repo = repo.resolve().parents[1] / EXTERNAL_PARENTS[key] / "repo"
                self.parent = Pom(parent_repo, child(parent, "version") or "", "pom.xml", release)
                self.external = f"{key}:{child(parent, 'version')}"
        self.properties: dict[str, str] = {}
        if self.parent is not None:
            self.properties.update(self.parent.properties)
        props = self.root.find(NS + "properties")
        if props is not None:
            for prop in props:
                self.properties[prop.tag.removeprefix(NS)] = (prop.text or "").strip()
        artifact = child(self.root, "artifactId") or ""
        group = child(self.root, "groupId") or (self.parent.properties.get("project.groupId") if self.parent else "")
        self.properties.update(
            {
                "project.version": release,
                "project.artifactId": artifact,
                "project.groupId": group or "",
            }
        )

    def resolve(self, text: str) -> str:
        for _ in range(10):
            new = re.sub(r"\$\{([^}]+)\}", lambda m: self.properties.get(m.group(1), m.group(0)), text)
            if new == text:
                break
            text = new
        if "${" in text:
            raise PomError(f"{self.path}@{self.tag}: unresolved {text}")
        return text

    def managed(self) -> list[ET.Element]:
        """dependencyManagement entries, this pom's before its parent's (Maven: the nearest declaration wins)."""
        own = self.root.findall(f"{NS}dependencyManagement/{NS}dependencies/{NS}dependency")
        return own + (self.parent.managed() if self.parent else [])

    def dependencies(self) -> list[ET.Element]:
        own = self.root.findall(f"{NS}dependencies/{NS}dependency")
        return own + (self.parent.dependencies() if self.parent else [])


def bom_versions(bom: Path, release: str, line: str, seen: set[str] | None = None) -> dict[str, str]:
    """artifactId -> version that jenkinsci/bom `release` manages in module `line` (its imports below its own)."""
    seen = seen or set()
    seen.add(line)
    pom = Pom(bom, release, f"{line}/pom.xml", release)
    versions: dict[str, str] = {}
    imports: list[str] = []
    for dep in pom.managed():
        artifact = child(dep, "artifactId") or ""
        if child(dep, "scope") == "import":
            name = pom.resolve(artifact)
            if name not in seen and (child(dep, "groupId") or "").startswith(("${project.groupId}", "io.jenkins")):
                imports.append(name)
            continue
        if child(dep, "classifier"):
            continue
        versions.setdefault(artifact, pom.resolve(child(dep, "version") or ""))
    for name in imports:
        for artifact, version in bom_versions(bom, release, name, seen).items():
            versions.setdefault(artifact, version)
    return versions


def read_release(repo: Path, tag: str, path: str, version: str, bom: Path, plugins: set[str]) -> dict[str, Any]:
    """The lock entry for the release at `tag`: what its MANIFEST declares, read from its pom."""
    pom = Pom(repo, tag, path, version)
    managed: dict[str, str] = {}
    bom_note = ""
    from_bom: set[str] = set()
    for dep in pom.managed():
        artifact = pom.resolve(child(dep, "artifactId") or "")
        if child(dep, "scope") == "import" and artifact.startswith("bom-"):
            release = pom.resolve(child(dep, "version") or "")
            for name, found in bom_versions(bom, release, artifact).items():
                managed.setdefault(name, found)
                from_bom.add(name)
            imported_by = f", imported by {pom.external}" if pom.external else ""
            bom_note = f" (versions from {artifact}:{release}{imported_by})"
            continue
        if child(dep, "version") and not child(dep, "classifier"):
            managed[artifact] = pom.resolve(child(dep, "version") or "")
    # The pom's own dependencyManagement wins over the BOM it imports (declared first in Maven's order).
    for dep in pom.managed():
        artifact = pom.resolve(child(dep, "artifactId") or "")
        if child(dep, "scope") != "import" and child(dep, "version") and not child(dep, "classifier"):
            managed[artifact] = pom.resolve(child(dep, "version") or "")
    plugins = plugins | from_bom  # a jenkinsci/bom manages plugins only
    requires: dict[str, str] = {}
    optional: dict[str, str] = {}
    for dep in pom.dependencies():
        scope = child(dep, "scope") or "compile"
        if scope not in ("compile", "runtime") or child(dep, "classifier"):
            continue
        artifact = pom.resolve(child(dep, "artifactId") or "")
        group = pom.resolve(child(dep, "groupId") or "")
        if artifact not in plugins:
            if group.startswith(PLUGIN_GROUPS) and (child(dep, "type") or "jar") in ("jar", "hpi"):
                print(f"note: {artifact} ({group}) is not in --plugins; taken as a library", file=sys.stderr)
            continue
        declared = child(dep, "version")
        minimum = pom.resolve(declared) if declared else managed.get(artifact)
        if not minimum:
            raise PomError(f"{path}@{tag}: no version for {artifact}")
        is_optional = (child(dep, "optional") or "false") == "true"
        (optional if is_optional else requires)[artifact] = minimum
    jenkins = pom.resolve(pom.properties.get("jenkins.version", "unknown"))
    return {
        "version": version,
        "jenkins": jenkins,
        "requires": dict(sorted(requires.items())),
        "optional": dict(sorted(optional.items())),
        "source": f"{repo.parent.name.replace('+', '/')} {tag}:{path}{bom_note}",
        "exact": True,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repo", type=Path, required=True, help="the plugin repository's git directory")
    parser.add_argument("--tag", required=True, help="the release tag")
    parser.add_argument("--version", help="the release version (default: the tag without a name- prefix)")
    parser.add_argument("--path", default="pom.xml", help="the plugin module's pom inside the repository")
    parser.add_argument("--bom", type=Path, required=True, help="the jenkinsci/bom git directory")
    parser.add_argument("--plugins", required=True, help="comma-separated artifactIds that are plugins")
    args = parser.parse_args(argv)
    version = args.version or re.sub(r"^[a-z][a-z0-9-]*-(?=\d)", "", args.tag)
    try:
        entry = read_release(args.repo, args.tag, args.path, version, args.bom, set(args.plugins.split(",")))
    except PomError as error:
        print(f"plugin-pom-deps: {error}", file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
