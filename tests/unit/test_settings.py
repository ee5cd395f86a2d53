"""Settings declared once: flags, environment variables, types and help all come from the dataclass fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from service.settings import (
    SettingsError,
    add_settings,
    describe_settings,
    parse_settings,
    setting,
    settings_from_args,
    with_default,
)


@dataclass(frozen=True)
class Example:
    name: str = setting("n", "A name.")
    count: int = setting(3, "How many.")
    ratio: float = setting(0.5, "A ratio.")
    enabled: bool = setting(False, "Switch.")
    path: Path | None = setting(None, "A file.")
    mode: Literal["a", "b"] = setting("a", "A choice.")
    models: tuple[str, ...] = setting((), "Repeatable.", flag="--model")
    secret: str | None = setting(None, "A secret.", secret=True)
    url: str = setting("redis://:pw@host:1/0", "A URL.")


@dataclass(frozen=True)
class Derived(Example):
    count: int = with_default(Example, "count", 7)


def test_defaults_flags_and_environment() -> None:
    assert parse_settings(Example, [], {}) == Example()
    environ = {
        "SAMSVC_NAME": "from-env",
        "SAMSVC_COUNT": "9",
        "SAMSVC_ENABLED": "yes",
        "SAMSVC_PATH": "/x/y.pth",
        "SAMSVC_MODE": "b",
        "SAMSVC_MODELS": "m1, m2",
        "SAMSVC_RATIO": "",  # empty: unset
    }
    settings = parse_settings(Example, ["--count", "4", "--model", "m3"], environ)
    assert settings == Example(
        name="from-env", count=4, enabled=True, path=Path("/x/y.pth"), mode="b", models=("m3",), ratio=0.5
    )
    assert parse_settings(Example, [], {"SAMSVC_MODELS": "m1,m2"}).models == ("m1", "m2")
    assert parse_settings(Example, ["--no-enabled"], {"SAMSVC_ENABLED": "1"}).enabled is False
    assert parse_settings(Example, ["--path", ""], {}).path is None


def test_a_subclass_changes_a_default_and_keeps_the_help() -> None:
    assert parse_settings(Derived, [], {}).count == 7
    parser = argparse.ArgumentParser()
    add_settings(parser, Derived)
    text = parser.format_help()
    assert "How many. [env SAMSVC_COUNT; default: 7]" in " ".join(text.split())


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SAMSVC_COUNT", "many", "SAMSVC_COUNT='many'"),
        ("SAMSVC_ENABLED", "perhaps", "not a boolean"),
        ("SAMSVC_MODE", "c", "must be one of a, b"),
    ],
)
def test_bad_environment_values_name_their_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings(Example, [], {variable: value})


def test_bad_flags_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_settings(parser, Example)
    with pytest.raises(SystemExit):
        settings_from_args(Example, parser.parse_args(["--mode", "c"]), {})
    assert "invalid choice" in capsys.readouterr().err


def test_secrets_and_url_passwords_are_masked() -> None:
    text = describe_settings(Example(secret="hunter2"))
    assert "hunter2" not in text and "secret = ***" in text
    assert "redis://:***@host:1/0" in text and ":pw@" not in text
