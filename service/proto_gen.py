"""Generates the Python gRPC code under service/_proto from proto/ (the committed copy is checked by a test)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
GENERATED_ROOT = Path(__file__).resolve().parent / "_proto"
GENERATED_PACKAGE = "service._proto"

# protoc writes absolute imports of the proto package ("from sam.v1 import sam_pb2"); the generated
# code lives inside our package, so those imports are rewritten to be package-qualified.
_PROTO_IMPORT = re.compile(r"^from (sam\.v1) import ", re.MULTILINE)


def proto_files() -> list[Path]:
    """Every .proto file of the API, sorted for a stable output."""
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules for every .proto file under out_dir; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {sources}")
    written = sorted(p for p in out_dir.rglob("*") if p.suffix in {".py", ".pyi"})
    for path in written:
        text = _PROTO_IMPORT.sub(rf"from {GENERATED_PACKAGE}.\1 import ", path.read_text())
        path.write_text(text)
    package_dirs = {out_dir}
    for path in written:
        package_dirs.update(d for d in path.parents if d.is_relative_to(out_dir))
    for package_dir in package_dirs:
        init = package_dir / "__init__.py"
        if not init.exists():
            init.write_text("")
    return sorted(p for p in out_dir.rglob("*") if p.suffix in {".py", ".pyi"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GENERATED_ROOT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
