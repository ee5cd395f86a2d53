"""`samsvc health`: ask a server's grpc.health.v1 service whether it is SERVING (container health checks)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from service.settings import env_name

# The services' default gRPC ports (encoder 50051, decoder 50052): one image runs either, so without an
# explicit address or SAMSVC_PORT the check asks both and passes if the one listening is SERVING.
DEFAULT_SERVICE_PORTS = (50051, 50052)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "health",
        help="exit 0 if a gRPC server reports SERVING on grpc.health.v1, 1 otherwise",
        description=(
            "Ask grpc.health.v1/Check (plaintext, no token: health is open) on each address; exit 0 if any answers "
            f"SERVING. Without --address: 127.0.0.1:${env_name('--health-port')} if set (the plaintext health port "
            f"of a service serving TLS), else 127.0.0.1:${env_name('--port')} if set, else 127.0.0.1 on ports "
            f"{', '.join(str(port) for port in DEFAULT_SERVICE_PORTS)}."
        ),
    )
    parser.add_argument(
        "--address", action="append", default=None, help="host:port to check (repeatable; default: see above)"
    )
    parser.add_argument("--service", default="", help="health service name to ask about (default: the whole server)")
    parser.add_argument("--timeout-seconds", type=float, default=3.0, help="deadline per check (default: 3)")
    parser.set_defaults(func=_check_command)


def default_addresses(environ: dict[str, str] | None = None) -> list[str]:
    """The addresses to check when none is given: the configured health port, else the gRPC port, else both
    services' defaults."""
    environ = dict(os.environ) if environ is None else environ
    for flag in ("--health-port", "--port"):
        port = environ.get(env_name(flag), "")
        if port not in ("", "0"):
            return [f"127.0.0.1:{port}"]
    return [f"127.0.0.1:{port}" for port in DEFAULT_SERVICE_PORTS]


def is_any_serving(addresses: Sequence[str], service: str, timeout_seconds: float) -> bool:
    from service.rpc.health_check import health_status

    serving = False
    for address in addresses:
        status = health_status(address, service, timeout_seconds)
        print(f"{address}: {status}")
        serving = serving or status == "SERVING"
    return serving


def _check_command(args: argparse.Namespace) -> int:
    addresses = args.address or default_addresses()
    return 0 if is_any_serving(addresses, args.service, args.timeout_seconds) else 1
