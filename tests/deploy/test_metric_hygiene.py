"""The services' metrics as the dashboard and the alerts need them: labelled counters exist at 0 before their first
event (a panel reads 0, not "No data"), and the decode histogram resolves the latencies a decode really has."""

from __future__ import annotations

import importlib
import re

import pytest
from prometheus_client import REGISTRY

from service.decoder import metrics as decoder_metrics
from service.encoder import metrics as encoder_metrics
from service.metrics import REDIS_OPERATIONS
from tests.deploy.manifests import ROOT


def _sample(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_every_redis_operation_the_services_time_is_created_up_front() -> None:
    sources = "\n".join(path.read_text() for path in (ROOT / "service").rglob("*.py") if "_proto" not in path.parts)
    timed = set(re.findall(r"\b_?timed\(\s*[\"'](\w+)[\"']", sources))
    assert timed, "no timed(...) calls found in service/"
    assert timed <= set(REDIS_OPERATIONS), f"add {sorted(timed - set(REDIS_OPERATIONS))} to REDIS_OPERATIONS"
    for operation in REDIS_OPERATIONS:
        assert _sample("sam_redis_errors_total", {"operation": operation}) is not None, operation
        assert _sample("sam_redis_seconds_count", {"operation": operation}) is not None, operation


@pytest.mark.parametrize(
    ("name", "label", "values"),
    [
        ("sam_decoder_request_errors_total", "code", decoder_metrics.REQUEST_ERROR_CODES),
        ("sam_decoder_lru_requests_total", "result", ("hit", "miss")),
        ("sam_decoder_redis_fetches_total", "result", ("found", "not_found", "damaged")),
        ("sam_encoder_cache_requests_total", "result", ("hit", "miss")),
        ("sam_encoder_get_embedding_requests_total", "result", ("found", "not_found", "damaged")),
        ("sam_encoder_single_flight_waits_total", "outcome", encoder_metrics.SINGLE_FLIGHT_OUTCOMES),
    ],
)
def test_labelled_counters_exist_before_their_first_event(name: str, label: str, values: tuple[str, ...]) -> None:
    for value in values:
        assert _sample(name, {label: value}) is not None, f"{name}{{{label}={value!r}}} is not created up front"


def test_single_flight_outcomes_are_those_a_waiting_call_can_have() -> None:
    for module_name in ("service.encoder.single_flight", "service.cache.single_flight"):
        try:
            outcome = importlib.import_module(module_name).Outcome
            break
        except ModuleNotFoundError:
            continue
    else:
        pytest.fail("single_flight.Outcome not found")
    assert set(encoder_metrics.SINGLE_FLIGHT_OUTCOMES) == {member.value for member in outcome} - {"led"}


def test_decoder_status_codes_created_up_front_are_real_status_codes() -> None:
    import grpc

    names = {code.name for code in grpc.StatusCode}
    assert set(decoder_metrics.REQUEST_ERROR_CODES) <= names


def test_request_buckets_resolve_1_ms_to_10_s_finest_from_5_to_200_ms() -> None:
    """A prompt lands at 5-200 ms (a GPU to this CPU): a boundary at least every 10 ms up to 100 ms and every 25 ms
    up to 200 ms; the whole range 1 ms to 10 s."""
    bounds = [bound for bound in decoder_metrics.REQUEST_SECONDS._upper_bounds if bound != float("inf")]
    assert bounds[0] == 0.001 and bounds[-1] == 10
    fine = [bound for bound in bounds if 0.005 <= bound <= 0.2]
    for low, high in zip(fine, fine[1:], strict=False):
        assert high - low <= (0.010001 if high <= 0.1 else 0.025001), (low, high)
