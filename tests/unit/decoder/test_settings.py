"""Decoder flags and their SAMSVC_* environment variables."""

from __future__ import annotations

from pathlib import Path

from service.decoder.settings import DecoderSettings
from service.settings import parse_settings


def test_decoder_settings_from_flags_and_environment() -> None:
    environ = {"SAMSVC_LRU_BYTES": "1234", "SAMSVC_DECODE_WORKERS": "3", "SAMSVC_MAX_OBJECTS": "9"}
    settings = parse_settings(DecoderSettings, ["--checkpoint", "/x.pth", "--max-objects", "4"], environ)
    assert (settings.lru_bytes, settings.decode_workers, settings.max_objects) == (1234, 3, 4)
    assert (settings.port, settings.metrics_port, settings.device, settings.max_points) == (50052, 9102, "cpu", 64)
    assert settings.checkpoint == Path("/x.pth")
