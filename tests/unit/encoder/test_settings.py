"""The encoder's flags, environment variables and model identity; the cheap request checks."""

from __future__ import annotations

import pytest

from service.encoder.embed import check_image_size
from service.encoder.server import resolve_models
from service.encoder.settings import EncoderSettings
from service.errors import InvalidArgument, ResourceExhausted
from service.image_info import ImageLimits
from service.model_identity import ModelIdentity, select_model
from service.runtime.checkpoint import CheckpointInfo
from service.settings import parse_settings


def parse(argv: list[str], environ: dict[str, str] | None = None) -> EncoderSettings:
    return parse_settings(EncoderSettings, argv, environ or {})


def test_defaults_are_the_documented_ones() -> None:
    settings = parse([])
    assert (settings.port, settings.metrics_port, settings.triton_url, settings.triton_model) == (
        50051,
        9101,
        "127.0.0.1:8001",
        "sam_image_encoder",
    )
    assert (settings.embedding_ttl_seconds, settings.max_image_bytes, settings.max_image_pixels) == (
        86400,
        33554432,
        50000000,
    )
    assert (settings.triton_timeout_seconds, settings.single_flight_wait_seconds) == (60.0, 120.0)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.log_level, settings.log_format) == ("INFO", "text")


def test_environment_variables_set_flags_and_flags_win() -> None:
    environ = {
        "SAMSVC_TRITON_URL": "triton:8001",
        "SAMSVC_EMBEDDING_TTL_SECONDS": "60",
        "SAMSVC_REDIS_URL": "rediss://:secret@redis:6380/0",
    }
    settings = parse(["--triton-url", "other:9001"], environ)
    assert (settings.triton_url, settings.embedding_ttl_seconds) == ("other:9001", 60)
    assert settings.redis_url.startswith("rediss://")


def test_the_environment_is_read_when_parsing_not_when_the_parser_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from service.settings import add_settings, settings_from_args

    parser = argparse.ArgumentParser()
    add_settings(parser, EncoderSettings)
    monkeypatch.setenv("SAMSVC_TRITON_MODEL", "set-after-building")
    assert settings_from_args(EncoderSettings, parser.parse_args([])).triton_model == "set-after-building"


def test_models_from_flags_or_the_single_model_flags(tiny_checkpoint: CheckpointInfo) -> None:
    (legacy,) = resolve_models(EncoderSettings(model_id="vit_h-0123"))
    assert legacy == ModelIdentity("vit_h-0123", "vit_h", "sam_image_encoder")
    (single,) = resolve_models(EncoderSettings(checkpoint=tiny_checkpoint.path))
    assert single == ModelIdentity(tiny_checkpoint.model_id, "tiny", "sam_image_encoder")
    first, second = resolve_models(EncoderSettings(models=(f"a={tiny_checkpoint.path}", "b=builtin:lite_medsam")))
    assert (first.name, first.model_id) == ("a", tiny_checkpoint.model_id)
    assert (second.name, second.arch) == ("b", "lite_medsam") and second.model_id.startswith("tinyvit-lite_medsam-")
    with pytest.raises(ValueError, match="no model"):
        resolve_models(EncoderSettings())
    with pytest.raises(ValueError, match="not both"):
        resolve_models(EncoderSettings(models=("a=x.pth",), checkpoint=tiny_checkpoint.path))
    with pytest.raises(ValueError, match="NAME=CHECKPOINT"):
        resolve_models(EncoderSettings(models=("x.pth",)))


def test_a_caller_names_a_model_by_id_architecture_or_served_name() -> None:
    models = [ModelIdentity("sam-tiny-0123", "tiny", "small"), ModelIdentity("tinyvit-lite_medsam-4567", "lite_medsam")]
    assert select_model(models, "") is models[0]
    for requested, expected in (("tiny", 0), ("sam-tiny-0123", 0), ("small", 0), ("lite_medsam", 1)):
        assert select_model(models, requested) is models[expected]
    with pytest.raises(InvalidArgument, match="model: this server embeds with 'sam-tiny-0123', "):
        select_model(models, "vit_h")


def test_size_checks_before_any_lookup() -> None:
    with pytest.raises(InvalidArgument, match="image: is empty"):
        check_image_size(b"", ImageLimits())
    with pytest.raises(ResourceExhausted, match="image: is 11 bytes, over the limit of 10"):
        check_image_size(b"x" * 11, ImageLimits(max_bytes=10))
    check_image_size(b"x" * 10, ImageLimits(max_bytes=10))
