"""Renamed commands and functions keep their former names working, and say so where a user looks."""

from __future__ import annotations

import click
from click.testing import CliRunner

import evaluator
from evaluator.cli import ALIASES, SUBCOMMANDS, main


def test_every_alias_names_a_command_and_is_in_the_groups_help() -> None:
    help_text = CliRunner().invoke(main, ["--help"]).output
    for alias, name in ALIASES.items():
        assert name in SUBCOMMANDS and alias not in SUBCOMMANDS
        assert f"`evaluator {alias}` is the former name of `evaluator {name}`" in " ".join(help_text.split())


def test_plan_is_capacity() -> None:
    runner = CliRunner()
    with click.Context(main, info_name="evaluator") as ctx:
        assert main.get_command(ctx, "plan") is main.get_command(ctx, "capacity")
    plan_help = runner.invoke(main, ["plan", "--help"]).output.splitlines()
    capacity_help = runner.invoke(main, ["capacity", "--help"]).output.splitlines()
    assert plan_help[0].endswith("plan [OPTIONS] REPORT.json") and plan_help[1:] == capacity_help[1:]


def test_judge_is_apply_gate() -> None:
    assert evaluator.judge is evaluator.apply_gate
