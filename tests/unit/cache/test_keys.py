"""The key grammar: built and parsed in one place, strict, every key of an image in one Redis Cluster slot."""

from __future__ import annotations

import hashlib
import re

import pytest

from service.cache.keys import ImageKey, check_tenant, image_key_of, parse_image_key
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


SECRET = b"0123456789abcdef0123456789abcdef"


def test_with_a_secret_the_digest_is_an_hmac_nobody_computes_from_the_image_alone() -> None:
    """Issue 10, finding 4: keys were the plain SHA-256 of the bytes, so anyone holding an image knew its key."""
    image = b"the same image bytes"
    plain = image_key_of("m", image)
    keyed = image_key_of("m", image, secret=SECRET)
    assert plain.digest == hashlib.sha256(image).hexdigest()
    assert keyed.digest != plain.digest and re.fullmatch(r"[0-9a-f]{64}", keyed.digest)
    assert keyed == image_key_of("m", image, secret=SECRET)  # stable: one embedding per image
    assert keyed != image_key_of("m", image, secret=SECRET[::-1])
    assert keyed.digest != image_key_of("n", image, secret=SECRET).digest  # the model is in the HMAC
    assert parse_image_key(str(keyed)) == keyed


def test_each_tenant_has_its_own_key_for_the_same_image() -> None:
    image = b"the same image bytes"
    radiology = image_key_of("m", image, tenant="radiology", secret=SECRET)
    pathology = image_key_of("m", image, tenant="pathology", secret=SECRET)
    shared = image_key_of("m", image, secret=SECRET)
    assert (radiology.tenant, pathology.tenant, shared.tenant) == ("radiology", "pathology", None)
    assert len({radiology.digest, pathology.digest, shared.digest}) == 3
    assert str(radiology) == f"sam:m:radiology:{{{radiology.digest}}}"
    assert parse_image_key(str(radiology)) == radiology


def test_tenant_names_follow_the_grammar() -> None:
    check_tenant("radiology.eu-1")
    for bad in ("", "a:b", "a{b}", "x" * 65, "tab\tname", "new\n"):
        with pytest.raises(ValueError, match="tenant"):
            check_tenant(bad)
