"""The key grammar: built and parsed in one place, strict, every key of an image in one Redis Cluster slot."""

from __future__ import annotations

import hashlib

import pytest

from service.cache.keys import ImageKey, image_key_of, parse_image_key
from service.errors import MAX_ECHOED_CHARACTERS, InvalidArgument

DIGEST = hashlib.sha256(b"image bytes").hexdigest()


def _hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first { and the next }, when not empty."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start + 1)]


def test_the_key_names_the_model_and_the_sha256_of_the_bytes() -> None:
    key = image_key_of("vit_h-0123456789abcdef", b"image bytes")
    assert str(key) == f"sam:vit_h-0123456789abcdef:{{{DIGEST}}}"
    assert parse_image_key(str(key)) == key


def test_a_tenant_scopes_the_key() -> None:
    key = image_key_of("tiny-00", b"image bytes", tenant="acme")
    assert str(key) == f"sam:tiny-00:acme:{{{DIGEST}}}"
    assert parse_image_key(str(key)) == ImageKey("tiny-00", DIGEST, "acme")
    assert key != image_key_of("tiny-00", b"image bytes")


def test_every_key_of_one_image_shares_one_hash_tag() -> None:
    key = image_key_of("sam2.1_hiera_b+-00ff", b"image bytes", tenant="t1")
    assert {_hash_tag(k) for k in (str(key), key.lock_key, key.side_key("chunk1"))} == {DIGEST}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-key",
        f"sam:m:{DIGEST}",  # no hash tag
        f"sam:m:{{{DIGEST.upper()}}}",
        f"sam:m:{{{DIGEST[:-1]}}}",
        f"sam:m:{{{DIGEST}}}:lock",  # a side key is not an image key
        f"sam::{{{DIGEST}}}",
        f"sam:m:a:b:{{{DIGEST}}}",
        f"sam:m{{x}}:{{{DIGEST}}}",
        f"other:m:{{{DIGEST}}}",
        f"sam:{'m' * 65}:{{{DIGEST}}}",
    ],
)
def test_anything_else_is_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_image_key(text, "requests[2].image_key")
    assert raised.value.field == "requests[2].image_key"


def test_a_long_foreign_key_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_image_key("x" * 10_000)
    assert len(str(raised.value)) < MAX_ECHOED_CHARACTERS + 200


def test_parts_are_checked_when_building() -> None:
    with pytest.raises(ValueError, match="model id"):
        ImageKey("a:b", DIGEST)
    with pytest.raises(ValueError, match="tenant"):
        ImageKey("m", DIGEST, "{t}")
    with pytest.raises(ValueError, match="digest"):
        ImageKey("m", "0" * 63)
