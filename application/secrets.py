"""Bearer-token secrets: generated here, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "sdh_"


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> str:
    # 256 random bits need no slow KDF: guessing is hopeless, and a fast hash keeps
    # per-request authentication a single indexed lookup.
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
