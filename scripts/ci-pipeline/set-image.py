"""Point rendered run manifests at the image built for this commit, in place (or print the results claim).

pulumi/factory/render.py takes the image from the stack config; the release pipeline evaluates the image it
just built, tagged by the merge commit. Kept out of the Jenkinsfile on purpose: logic lives in scripts.

usage: set-image.py IMAGE FILE...        rewrite every container image of the Jobs in FILE...
       set-image.py --print-claim FILE   print the PVC claim name of the Job's results volume
       set-image.py --print-completions FILE   print the Indexed Job's completions (= shard count)
       set-image.py --print-namespace FILE     print the object's namespace
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") != "Job":
        return None
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def set_image(image: str, paths: list[Path]) -> int:
    changed = 0
    for path in paths:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = _pod_spec(doc)
        if spec is None:
            continue
        for key in ("initContainers", "containers"):
            for container in spec.get(key, []):
                container["image"] = image
                changed += 1
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=4096), encoding="utf-8")
    return changed


def results_claim(path: Path) -> str:
    spec = _pod_spec(yaml.safe_load(path.read_text(encoding="utf-8")))
    for volume in (spec or {}).get("volumes", []):
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim:
            return str(claim)
    raise SystemExit(f"error: {path}: no persistentVolumeClaim volume in the Job")


def completions(path: Path) -> int:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    value = doc.get("spec", {}).get("completions") if isinstance(doc, dict) else None
    if not isinstance(value, int) or value < 1:
        raise SystemExit(f"error: {path}: spec.completions is not a positive integer")
    return value


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--print-claim":
        print(results_claim(Path(argv[1])))
        return 0
    if len(argv) == 2 and argv[0] == "--print-namespace":
        doc = yaml.safe_load(Path(argv[1]).read_text(encoding="utf-8"))
        print(doc["metadata"]["namespace"])
        return 0
    if len(argv) == 2 and argv[0] == "--print-completions":
        print(completions(Path(argv[1])))
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if set_image(argv[0], [Path(p) for p in argv[1:]]) == 0:
        print("error: no Job container found to point at the image", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
