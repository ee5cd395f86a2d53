"""Decoder flags and their SAMSVC_* environment variables."""

from __future__ import annotations

import pytest

from service.decoder.settings import add_decoder_settings, settings_from_args


def test_decoder_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.setenv("SAMSVC_LRU_BYTES", "1234")
    monkeypatch.setenv("SAMSVC_DECODE_WORKERS", "3")
    parser = argparse.ArgumentParser()
    add_decoder_settings(parser)
    settings = settings_from_args(parser.parse_args(["--checkpoint", "/x.pth", "--max-objects", "4"]))
    assert (settings.lru_bytes, settings.decode_workers, settings.max_objects) == (1234, 3, 4)
    assert (settings.port, settings.metrics_port, settings.device, settings.max_points) == (50052, 9102, "cpu", 64)
    assert str(settings.checkpoint) == "/x.pth"
