"""The grammar of cache keys, built and parsed here only.

    sam:<model id>:{<digest>}              an image's embedding
    sam:<model id>:<tenant>:{<digest>}     the same, scoped to a tenant
    <image key>:<suffix>                   a side key of that image (its single-flight lock `:lock` and the lock's
                                           failure record `:lock:failed`, payload chunks)

- the model id stays readable, so the decoder serves whatever model a key names;
- `<digest>` is 64 lowercase hex digits: the SHA-256 of the image bytes or, with a server secret, an HMAC-SHA256
  under that secret of the model id, the tenant and the bytes (a key nobody can compute from the image alone, and
  different for each tenant, so a tenant can neither read another's embedding nor learn that it exists);
- the tenant, when the caller's token names one, scopes the key: the decoder serves a key to that tenant only;
- the digest in braces is a Redis Cluster hash tag: every key of one image lands in one slot, so pipelines and
  scripts over them work on a cluster;
- model ids and tenants are 1–64 characters of [A-Za-z0-9_.+-]; no colons or braces.
A key that does not parse exactly is INVALID_ARGUMENT, never looked up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from service.errors import InvalidArgument, echo

KEY_PREFIX: Final = "sam"
_NAME = r"[A-Za-z0-9_.+-]{1,64}"
_NAME_PATTERN: Final = re.compile(rf"^{_NAME}$")
_KEY_PATTERN: Final = re.compile(
    rf"^{KEY_PREFIX}:(?P<model_id>{_NAME}):(?:(?P<tenant>{_NAME}):)?\{{(?P<digest>[0-9a-f]{{64}})\}}$"
)
LOCK_SUFFIX: Final = "lock"
# Prefixes the HMAC's message, so an image key's HMAC can never equal another use of the same secret.
_HMAC_DOMAIN: Final = b"samsvc image key v1\0"


def check_tenant(name: str) -> None:
    """ValueError unless `name` can be a key's tenant (1-64 characters of [A-Za-z0-9_.+-])."""
    if not _NAME_PATTERN.fullmatch(name):
        raise ValueError(f"tenant {name!r} is not 1-64 characters of [A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class ImageKey:
    """The parts of an image key; str() is the key itself."""

    model_id: str
    digest: str
    tenant: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("model id", self.model_id), ("tenant", self.tenant)):
            if value is not None and not _NAME_PATTERN.match(value):
                raise ValueError(f"{name} {value!r} is not 1-64 characters of [A-Za-z0-9_.+-]")
        if not re.fullmatch(r"[0-9a-f]{64}", self.digest):
            raise ValueError(f"digest {self.digest!r} is not 64 lowercase hex digits")

    def __str__(self) -> str:
        tenant = f"{self.tenant}:" if self.tenant else ""
        return f"{KEY_PREFIX}:{self.model_id}:{tenant}{{{self.digest}}}"

    def side_key(self, suffix: str) -> str:
        """Another Redis key of this image, in the same hash slot."""
        return f"{self}:{suffix}"

    @property
    def lock_key(self) -> str:
        return self.side_key(LOCK_SUFFIX)

    @property
    def short(self) -> str:
        """A short form for logs and metrics: the model and the first 12 digits of the digest."""
        return f"{self.model_id}:{self.digest[:12]}"


def image_key_of(model_id: str, image_bytes: bytes, tenant: str | None = None, secret: bytes | None = None) -> ImageKey:
    """The key of `image_bytes`' embedding by model `model_id` for `tenant`: its digest is the bytes' SHA-256, or
    with a server `secret` an HMAC-SHA256 of the model id, the tenant and the bytes."""
    if secret is None:
        digest = hashlib.sha256(image_bytes).hexdigest()
    else:
        keyed = hmac.new(secret, _HMAC_DOMAIN, hashlib.sha256)
        keyed.update(f"{model_id}\0{tenant or ''}\0".encode())
        keyed.update(image_bytes)
        digest = keyed.hexdigest()
    return ImageKey(model_id=model_id, digest=digest, tenant=tenant)


def parse_image_key(text: str, field: str = "image_key") -> ImageKey:
    """The parts of a key this service made; InvalidArgument naming `field` for anything else."""
    match = _KEY_PATTERN.match(text)
    if match is None:
        raise InvalidArgument(
            f"{echo(text)} is not an image key (expected '{KEY_PREFIX}:<model>:{{<sha256 hex>}}' as Embed returns it)",
            field,
        )
    return ImageKey(model_id=match["model_id"], digest=match["digest"], tenant=match["tenant"])
