"""The README stays true: every setting of the services is in its table, every command it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def help_of(command: str) -> str:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    return subparsers.choices[command].format_help()  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["encoder", "decoder"])
def test_every_setting_is_in_the_configuration_table(command: str) -> None:
    variables = set(re.findall(r"SAMSVC_[A-Z_]+", help_of(command).replace("\n", "").replace(" ", "")))
    assert variables
    missing = sorted(variable for variable in variables if f"`{variable}`" not in README)
    assert not missing, f"README's configuration table lacks {missing}"


def test_named_subcommands_exist() -> None:
    named = set(re.findall(r"samsvc ([\w-]+)", README))
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    assert named and named <= set(subparsers.choices), named - set(subparsers.choices)  # type: ignore[attr-defined]


def test_top_commands_are_the_ones_ci_runs() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci/run").read_text()
    assert "bash scripts/setup.sh" in README and "bash scripts/setup.sh" in ci
    assert ".venv/bin/pytest" in README and ci.rstrip().endswith(".venv/bin/pytest")
