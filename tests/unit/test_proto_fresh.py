"""The committed generated code matches what proto/ generates now, and every field is documented."""

from __future__ import annotations

import re
from pathlib import Path

from service.proto_gen import GENERATED_ROOT, PROTO_ROOT, generate, proto_files

_FIELD = re.compile(r"^\s*(repeated\s+|optional\s+)?[A-Za-z0-9_.]+\s+[a-z_0-9]+\s*=\s*\d+;")
_ENUM_VALUE = re.compile(r"^\s*[A-Z_0-9]+\s*=\s*\d+;")


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = {p.relative_to(tmp_path): p.read_text() for p in generate(tmp_path)}
    committed = {
        p.relative_to(GENERATED_ROOT): p.read_text() for p in GENERATED_ROOT.rglob("*") if p.suffix in {".py", ".pyi"}
    }
    stale = sorted(str(name) for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"service/_proto is stale for {stale}: run `python -m service.proto_gen`"


def test_every_field_and_enum_value_has_a_comment() -> None:
    assert proto_files() and all(p.is_relative_to(PROTO_ROOT) for p in proto_files())
    undocumented = []
    for path in proto_files():
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if (_FIELD.match(line) or _ENUM_VALUE.match(line)) and not lines[index - 1].strip().startswith("//"):
                undocumented.append(f"{path.name}:{index + 1}: {line.strip()}")
    assert not undocumented, undocumented
