"""The Responses API's server secret: the keys of compaction items and item ids.

Compaction items (`encrypted_content`) and the ids of output items (which an
`item_reference` resolves) are made with keys derived from one secret, so that every
worker and replica configured with it opens and resolves what another made:
`ROBUTLER_RESPONSES_SECRET` (at least 16 bytes). Without it, each process makes a random
secret at start, and its compaction items and item references work in that process only.
"""

from __future__ import annotations

import os
from functools import cache

__all__ = ["derive", "secret_configured"]

ENV = "ROBUTLER_RESPONSES_SECRET"
_RANDOM = os.urandom(32)  # the process's own, when none is configured


def secret_configured() -> bool:
    """Whether `ROBUTLER_RESPONSES_SECRET` is set."""
    return bool(os.environ.get(ENV))


def derive(purpose: bytes, secret: str | bytes | None = None) -> bytes:
    """A 32-byte key for `purpose` from `secret` (default: the configured secret, else
    the process's random one), with HKDF-SHA256."""
    if secret is None:
        secret = os.environ.get(ENV) or _RANDOM
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < 16:
        raise ValueError(
            f"the Responses secret ({ENV}) must be at least 16 bytes: use a long random "
            "string, the same on every worker and replica"
        )
    return _derive(raw, purpose)


@cache
def _derive(raw: bytes, purpose: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"robutler " + purpose
    ).derive(raw)
