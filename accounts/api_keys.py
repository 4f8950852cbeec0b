"""API key material: generation and lookup by hash (R-ACC-6)."""

import hashlib
import secrets

KEY_PREFIX = "sk-"


def hash_secret(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key_material():
    """Return (raw key shown once, visible prefix, stored hash)."""
    body = secrets.token_urlsafe(32)
    raw = f"{KEY_PREFIX}{body}"
    return raw, raw[: len(KEY_PREFIX) + 8], hash_secret(raw)
