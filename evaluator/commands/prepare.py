"""`evaluator prepare`: an optional step before the shards: check the run, fix its G-Eval steps, print its plan.

Nothing needs it: every shard of a plain Indexed Job checks the suite and dataset itself, and the first shard to
need G-Eval steps writes them for the whole run under a lock (engine/steps.py). Run it first when you want a bad
suite to fail before any pod starts, the judge's steps written once by one process, or the facts a workflow
fans out over (`--json`: the variants for Argo's `withParam`, the units, the completions of 'many' sharding).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

import evaluator
from evaluator.commands.common import git_commit, handle_errors, profile_option, setup_logging, sharding_option


@click.command()
@click.argument("suite_file", metavar="SUITE.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    envvar="EVAL_OUT_DIR",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The run's results folder (where the shards will write). [env: EVAL_OUT_DIR]",
)
@click.option("--run-id", envvar="EVAL_RUN_ID", default=None, help="The run's id. [env: EVAL_RUN_ID]")
@click.option("--commit", envvar="EVAL_COMMIT", default=None, help="Commit under evaluation. [env: EVAL_COMMIT]")
@sharding_option(", as `run` will use it")
@profile_option()
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@handle_errors
def prepare(suite_file: Path, out: Path, run_id: str | None, commit: str | None, sharding: str | None,
            profile: str | None, as_json: bool) -> None:  # fmt: skip
    """Check a run of SUITE.yaml and write its G-Eval steps into OUT, before any shard starts (optional).

    \b
    Prints: the variants, the selected cases, the (variant, case) units the shards split, the sharding the run
    uses (--sharding, EVAL_SHARDING, else the suite's) and, for 'many', the number of shards it needs.
    --json adds `many_shards` (what 'many' would need, whatever the mode) for a workflow that fans out.
    Exit codes: 0 prepared, 2 bad suite/dataset/profile, 4 the judge could not write the G-Eval steps.
    """
    setup_logging(quiet=as_json)
    loaded = evaluator.load_suite(suite_file)
    planned = evaluator.plan_run(loaded, profile=profile)
    commit = commit or git_commit(suite_file.resolve().parent)
    run_id = run_id or evaluator.default_run_id(loaded, commit, profile)
    mode = sharding or loaded.suite.sharding.mode
    steps = asyncio.run(_steps(loaded, out, run_id))
    facts: dict[str, Any] = {
        "run_id": run_id,
        "suite": loaded.suite.name,
        "profile": profile,
        "variants": planned.variants,
        "reference": loaded.suite.reference,
        "cases": len(planned.cases),
        "units": len(planned.units),
        "sharding": mode,
        "shards": planned.shard_count(mode) if mode == "many" else None,
        "many_shards": planned.shard_count("many"),
        "g_eval_steps": steps,
    }
    if as_json:
        click.echo(json.dumps(facts))
        return
    click.echo(f"run {run_id}: {planned.describe()}")
    click.echo(_sharding_line(mode, "" if sharding else " (the suite's)", loaded.suite.sharding.chunk_size, facts))
    for key, written in steps.items():
        click.echo(f"G-Eval {key}: {len(written)} steps fixed for the run")


def _sharding_line(mode: str, origin: str, chunk_size: int, facts: dict[str, Any]) -> str:
    """What the shards of this run will do with the units, in the mode they will use."""
    if mode == "many":
        return (
            f"sharding 'many'{origin}: chunks of {chunk_size} units, {facts['shards']} shards (the Job's completions)"
        )
    how = "in contiguous runs" if mode == "contiguous" else "longest first by a previous run's durations (--timings)"
    return (
        f"sharding '{mode}'{origin}: the {facts['units']} units split {how} over the Job's completions (--total-shards)"
    )


async def _steps(loaded: Any, out: Path, run_id: str) -> dict[str, list[str]]:
    """The run's G-Eval steps, written to OUT/g_eval_steps.json (or read from it) exactly as a shard would."""
    from evaluator.engine.clients import new_client
    from evaluator.engine.judge import ChatJudge, NoJudge
    from evaluator.engine.metrics import MetricFactory

    suite = loaded.suite
    client = new_client(suite.judge, suite.concurrency) if suite.judge is not None else None
    if client is not None:
        await client.__aenter__()
    try:
        judge = ChatJudge(client, suite.judge) if client is not None and suite.judge is not None else NoJudge()
        factory = MetricFactory(suite.metrics, judge)
        return await factory.prepare(out, run_id=run_id, suite_hash=loaded.suite_hash)
    finally:
        if client is not None:
            await client.__aexit__()
