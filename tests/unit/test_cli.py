"""The `samsvc` command line: subcommands listed, argument errors clear."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.cli import build_parser

SUBCOMMANDS = ("checkpoint", "encoder", "decoder", "export-decoder", "triton", "up", "segment", "health", "embed")


def test_help_lists_every_subcommand() -> None:
    result = subprocess.run([sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert f"    {name}" in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([name, "--help"])
    assert exited.value.code == 0
    assert "usage: samsvc" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["segment", "x.png", "--point", "1"], "expected x,y or x,y,label"),
        (["segment", "x.png", "--box", "1,2,3"], "expected x0,y0,x1,y1"),
        (["segment", "x.png", "--point", "a,b"], "could not convert"),
    ],
)
def test_segment_rejects_malformed_prompts(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(arguments)
    assert message in capsys.readouterr().err


def test_segment_needs_a_prompt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "segment", str(image), "--json"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--point" in result.stderr


def test_up_without_redis_explains_how_to_install(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "up"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "apt-get install redis-server" in result.stderr and "--redis-url" in result.stderr


def test_help_works_without_the_triton_extra() -> None:
    """The service image has no nvidia-pytriton: every subcommand must still parse."""
    code = (
        "import sys; sys.modules['pytriton'] = None\n"
        "from service.cli import main\n"
        "sys.exit(main(['encoder', '--help']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "SAMSVC_TRITON_URL" in result.stdout
