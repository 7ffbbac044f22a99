"""The `plan` step of the Argo fan-out over a suite's variants: `evaluator prepare`, then Argo's output parameters.

The WorkflowTemplate runs this file's text in the evaluator image (Python, no shell), as

    python -c <this file> --outputs DIR --shards N --sharding MODE --parallelism P --max-failed-indexes F \\
        -- evaluator prepare /suite/suite.yaml --out /results/RUN --json

The command after `--` is the evaluator's own `prepare` (docs/contract.md, "A fan-out over variants"): it checks the
suite, the dataset and the profile (EVAL_PROFILE), writes the run's G-Eval steps once into /results/RUN and prints
the run's plan as one JSON object. Its stderr and exit code pass through unchanged (2: bad suite, dataset or
profile; 4: the judge could not write the steps), and nothing is written then. From its JSON this writes the files
Argo reads through `outputs.parameters[].valueFrom.path`:

  DIR/branches           JSON list, one object per variant, for `withParam`: the variant, its Indexed Job's name
                         (`branch_job_name`), completions, parallelism and maxFailedIndexes
  DIR/reference          the reference variant
  DIR/gate-alone         JSON list: variants gated on their own report (the one variant of a single-variant suite,
                         exactly as the kubectl path gates it)
  DIR/gate-vs-reference  JSON list: variants gated against the reference's report (all of them when there are
                         several; the reference itself then only answers for its own problems and error budget)

Completions per branch: the stack's shards, or for 'many' sharding the contract's `many_shards / variants`
rounded up (= ceil(selected cases / chunk_size), what `evaluator run --variant V` expects). Stdlib only:
`factory.workflow` embeds this file's text, and the tests run it as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# A pod of an Indexed Job is named `<job>-<index>-<suffix>` and its hostname is `<job>-<index>`, a DNS label of at
# most 63 characters: 52 leaves room for any index below 10**10.
JOB_NAME_MAX = 52
RUN_ID_MAX = 40  # as factory.settings.RUN_ID_MAX: the run id names the suite ConfigMap and the results folder
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXIT_INPUT_ERROR = 2  # the evaluator's exit codes (docs/contract.md)


def branch_job_name(run_id: str, variant: str) -> str:
    """`eval-<run-id>-<variant>`, or, when that would not fit, its head and a hash of both: deterministic (every
    render and every retry of the plan step names the same Job) and distinct for distinct (run, variant)."""
    name = f"eval-{run_id}-{variant}"
    if len(name) <= JOB_NAME_MAX:
        return name
    digest = hashlib.sha256(f"{run_id}\0{variant}".encode()).hexdigest()[:10]
    return f"{name[: JOB_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def branches(
    facts: dict[str, Any], shards: int, sharding: str, parallelism: int, max_failed: int
) -> list[dict[str, Any]]:
    """One Indexed Job per variant, all sharing the run id (and so the run's G-Eval steps)."""
    variants: list[str] = facts["variants"]
    # 'many': the contract's many_shards / variants, rounded up (= ceil(cases / chunk_size), as `run --variant`).
    completions = max(1, math.ceil(int(facts["many_shards"]) / len(variants))) if sharding == "many" else shards
    return [
        {
            "variant": variant,
            "job": branch_job_name(facts["run_id"], variant),
            "completions": completions,
            "parallelism": min(parallelism, completions),
            "max-failed-indexes": min(max_failed, completions),
        }
        for variant in variants
    ]


def outputs(facts: dict[str, Any], planned: list[dict[str, Any]]) -> dict[str, str]:
    """File name -> content, for Argo's output parameters."""
    variants: list[str] = facts["variants"]
    several = len(variants) > 1
    return {
        "branches": json.dumps(planned),
        "reference": facts["reference"],
        "gate-alone": json.dumps([] if several else variants),
        "gate-vs-reference": json.dumps(variants if several else []),
    }


def write(folder: Path, files: dict[str, str]) -> None:
    """Each file complete or absent (temp + rename): Argo reads them once the container has ended."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(temp).replace(folder / name)


def run_id_ok(run_id: str) -> bool:
    return bool(_DNS_LABEL.match(run_id)) and len(run_id) <= RUN_ID_MAX


def bad_run_id(run_id: object) -> str:
    return (
        f"run id {run_id!r} (EVAL_RUN_ID, the workflow's run-id parameter) must be lowercase letters, digits and "
        f"'-', at most {RUN_ID_MAX} characters: it names the run's objects and folder"
    )


def fail(message: str) -> int:
    print(f"plan: {message}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="plan", description="The plan step of the fan-out over variants.")
    parser.add_argument("--outputs", type=Path, required=True, help="folder of Argo's output parameter files")
    parser.add_argument("--shards", type=int, required=True, help="the stack's eval.shards")
    parser.add_argument("--sharding", required=True, choices=["contiguous", "balanced", "many"])
    parser.add_argument("--parallelism", type=int, required=True, help="the stack's eval.parallelism")
    parser.add_argument("--max-failed-indexes", type=int, required=True, help="the stack's eval.maxFailedIndexes")
    parser.add_argument("prepare", nargs=argparse.REMAINDER, help="-- evaluator prepare SUITE --out DIR --json")
    args = parser.parse_args(argv)
    command = args.prepare[1:] if args.prepare[:1] == ["--"] else args.prepare
    if not command:
        return fail("no prepare command after --")
    given = os.environ.get("EVAL_RUN_ID")
    if given and not run_id_ok(given):  # before anything is written under /results/<run-id>
        return fail(bad_run_id(given))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    print(done.stdout, end="", flush=True)  # the run's plan, in the step's log
    if done.returncode != 0:
        return done.returncode  # the evaluator has said why on stderr
    try:
        facts = json.loads(done.stdout)
        run_id, variants = facts["run_id"], facts["variants"]
    except (ValueError, KeyError, TypeError):
        return fail(f"{' '.join(command)} printed no plan (one JSON object with run_id and variants)")
    if not isinstance(run_id, str) or not run_id_ok(run_id):
        return fail(bad_run_id(run_id))
    if not variants or not all(isinstance(v, str) and _DNS_LABEL.match(v) for v in variants):
        return fail(f"variants {variants!r}: expected DNS-label names")
    planned = branches(facts, args.shards, args.sharding, args.parallelism, args.max_failed_indexes)
    write(args.outputs, outputs(facts, planned))
    for branch in planned:
        print(f"plan: variant {branch['variant']}: Job {branch['job']}, {branch['completions']} completion(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
