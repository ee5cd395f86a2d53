"""The layout keeps its promises: transport at the named edges only, Redis in the store only, light commands light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"

# Modules allowed to import grpc or the generated messages: the gRPC edge (server side and the shared channel and
# health pieces), the clients, and the generator of the messages themselves.
GRPC_EDGES = ("rpc/", "client/", "proto_gen.py", "_proto/")
_GRPC_MODULES = ("grpc", "grpc_health", "grpc_reflection", "grpc_tools", "service._proto")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def _service_modules() -> list[tuple[str, set[str]]]:
    return [
        (path.relative_to(SERVICE).as_posix(), _imported_modules(path))
        for path in sorted(SERVICE.rglob("*.py"))
        if "_proto" not in path.parts
    ]


def _imports_any(modules: set[str], roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(f"{root}.") for module in modules for root in roots)


def test_only_the_named_edges_import_grpc_or_the_generated_messages() -> None:
    offenders = [
        name
        for name, modules in _service_modules()
        if _imports_any(modules, _GRPC_MODULES) and not name.startswith(GRPC_EDGES)
    ]
    assert offenders == []
    # The check sees what it should: the servicers do import grpc.
    assert any(name == "rpc/decoder_servicer.py" and "grpc" in modules for name, modules in _service_modules())


def test_only_the_store_touches_redis() -> None:
    offenders = [name for name, modules in _service_modules() if _imports_any(modules, ("redis",))]
    assert offenders == ["cache/store.py"]


@pytest.mark.parametrize("argv", [["--help"], ["segment", "--help"], ["health", "--help"]])
def test_light_commands_import_no_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from service.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(name for name in ('torch', 'segment_anything', 'tritonclient') if name in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: samsvc" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-300:]
