"""Checks the settings run before production starts (PORTAL_ENV=production).

Plain functions over strings so tests can call them directly; settings.py raises
ImproperlyConfigured with the message each returns. Nothing here imports Django apps.
"""

from __future__ import annotations

import base64
import binascii
import math
import textwrap
from collections import Counter
from pathlib import Path

SANDBOX_KEYS = Path(__file__).resolve().parent.parent / "topups" / "sandbox_keys"

# Tokens that appear in our docs, tests or common examples: never a production token.
KNOWN_TOKENS = {
    "dev-gateway-token",
    "gateway-token-for-the-check",
    "changeme",
    "change-me",
    "secret",
    "token",
    "password",
}
MIN_TOKEN_LENGTH = 32
MIN_TOKEN_ENTROPY_BITS = 128


def _der_candidates(text: str):
    """The key bytes in every encoding an operator might paste: PEM, bare base64, DER file."""
    text = text.strip()
    if not text:
        return
    if "-----BEGIN" in text:
        yield "pem", text.encode()
        body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    else:
        body = text
    compact = "".join(body.split())
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            yield "der", decode(compact + "=" * (-len(compact) % 4))
        except (binascii.Error, ValueError):
            continue
    # a bare body wrapped as either kind of PEM
    wrapped = "\n".join(textwrap.wrap(compact, 64))
    for kind in ("PUBLIC KEY", "PRIVATE KEY", "RSA PRIVATE KEY", "RSA PUBLIC KEY"):
        yield "pem", f"-----BEGIN {kind}-----\n{wrapped}\n-----END {kind}-----\n".encode()


def public_numbers(data: str | bytes):
    """(n, e) of an RSA key given as PEM/base64 text or DER bytes, private or public; None if
    it is not a readable RSA key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
            candidates = list(_der_candidates(text))
        except UnicodeDecodeError:
            candidates = []
        candidates.append(("der", data))
    else:
        candidates = list(_der_candidates(data))
    loaders = {
        "pem": (serialization.load_pem_private_key, serialization.load_pem_public_key),
        "der": (serialization.load_der_private_key, serialization.load_der_public_key),
    }
    for form, blob in candidates:
        private_loader, public_loader = loaders[form]
        for loader in (private_loader, public_loader):
            try:
                key = loader(blob, password=None) if loader is private_loader else loader(blob)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                continue
            if isinstance(key, rsa.RSAPrivateKey):
                key = key.public_key()
            if isinstance(key, rsa.RSAPublicKey):
                numbers = key.public_numbers()
                return numbers.n, numbers.e
    return None


def sandbox_public_numbers() -> set:
    found = set()
    for path in SANDBOX_KEYS.glob("*.pem"):
        numbers = public_numbers(path.read_text())
        if numbers:
            found.add(numbers)
    return found


def key_material(value: str, path: str) -> str | bytes:
    if value:
        return value
    if path and Path(path).exists():
        raw = Path(path).read_bytes()
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return raw
    return ""


def sandbox_key_problem(name: str, value: str, path: str) -> str | None:
    """A message when the configured key is one of the development sandbox keys (either half
    of a pair: the same modulus), whatever its encoding."""
    material = key_material(value, path)
    if not material:
        return None
    numbers = public_numbers(material)
    if numbers is None:
        return f"{name} is not a readable RSA key"
    if numbers in sandbox_public_numbers():
        return f"{name} is a development sandbox key, refused in production"
    return None


def token_problem(token: str) -> str | None:
    """A message when the gateway service token is short, known or not random enough."""
    if not token:
        return "GATEWAY_SERVICE_TOKEN must be set in production"
    if token.strip().lower() in KNOWN_TOKENS or token.strip().lower().startswith("dev-"):
        return "GATEWAY_SERVICE_TOKEN is a known example value"
    if len(token) < MIN_TOKEN_LENGTH:
        return f"GATEWAY_SERVICE_TOKEN must be at least {MIN_TOKEN_LENGTH} characters"
    counts = Counter(token)
    per_char = -sum(c / len(token) * math.log2(c / len(token)) for c in counts.values())
    if per_char * len(token) < MIN_TOKEN_ENTROPY_BITS or len(counts) < 12:
        return (
            "GATEWAY_SERVICE_TOKEN does not look random; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    return None
