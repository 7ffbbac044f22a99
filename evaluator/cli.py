"""The `evaluator` command line: one group, subcommands loaded lazily.

Lazy loading keeps `evaluator gate` instant in a CI step and lets the image that only evaluates skip the
report and pipeline extras: a subcommand's module is imported only when that subcommand runs.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

# name -> "module:attribute" of a click.Command: one command a module, named after it.
SUBCOMMANDS: dict[str, str] = {
    "run": "evaluator.commands.run:run",
    "prepare": "evaluator.commands.prepare:prepare",
    "aggregate": "evaluator.commands.aggregate:aggregate",
    "gate": "evaluator.commands.gate:gate",
    "serve-demo-model": "evaluator.commands.serve_demo_model:serve_demo_model",
    "demo": "evaluator.commands.demo:demo",
    "report": "evaluator.commands.report:report",
    "trend": "evaluator.commands.trend:trend",
    "capacity": "evaluator.commands.capacity:capacity_command",
}
# Former names that still work (hidden from the command list, named in the group's help).
ALIASES: dict[str, str] = {"plan": "capacity"}
# Commands that left this package, and where they went: `evaluator NAME` says so instead of "No such command".
MOVED: dict[str, str] = {
    "webhook": "the release receiver is its own program now: `release-receiver` (receiver/README.md)",
    "doctor": "the host doctor left the evaluator: `python3 ansible/files/factory_doctor.py` on the host, or "
    "`ansible-playbook -K ansible/site.yml --tags doctor` (ansible/README.md)",
}


# What the command sets before any subcommand (and so DeepEval) is imported. DeepEval reads these once, when it
# is first imported: without them it would load a `.env` from the working directory into the environment (other
# credentials, EVAL_* overrides) and send telemetry. An explicit value in the environment still wins. The library
# (`import evaluator`) leaves the environment alone: the process is the caller's.
COMMAND_ENVIRONMENT: dict[str, str] = {"DEEPEVAL_DISABLE_DOTENV": "1", "DEEPEVAL_TELEMETRY_OPT_OUT": "1"}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use, in a process set up for a command."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        for name, value in COMMAND_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        return super().main(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in MOVED:
            raise click.UsageError(f"`evaluator {cmd_name}` moved: {MOVED[cmd_name]}", ctx)
        target = SUBCOMMANDS.get(ALIASES.get(cmd_name, cmd_name))
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # not built in this installation
            raise
        command: Any = getattr(module, attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ai-eval-factory")
def main() -> None:
    """Evaluate LLMs at scale: shard a suite, run shards concurrently, merge, gate.

    \b
    The contract (see docs/contract.md):
      evaluator run SUITE.yaml --out DIR      one shard (JOB_COMPLETION_INDEX in a pod)
      evaluator aggregate DIR --out REPORT    merge every shard, record every problem
      evaluator gate REPORT                   0 pass, 1 fail, 2 input error

    \b
    Exit codes: 0 ok, 1 gate failed, 2 usage or input error, 3 bad shard, 4 infrastructure failure.
    `evaluator plan` is the former name of `evaluator capacity`, and still works.
    """


def run_process() -> None:
    """The `evaluator` program (its console script and `python -m evaluator`): `main`, then the process ends
    (without the interpreter's teardown after a command that evaluated: evaluator/process_end.py)."""
    from evaluator import process_end

    try:
        main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            process_end.end(exc.code or 0)
        raise
    process_end.end(0)


if __name__ == "__main__":
    run_process()
