"""API keys for server-side integrations: format, generation and verification. No I/O.

A key reads ``crm_<key id>_<secret>``. The key id is public (it names the key in lists, logs and
revocations); only a SHA-256 hash of the secret is stored. The secret is 256 random bits, so a
fast hash is enough: nobody can guess such a secret from its hash, and a password hash (bcrypt,
argon2), slow by design, would add its cost to every request for nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "crm"
SUBJECT_PREFIX = "apikey:"  # an API key's identity is "apikey:<key id>"; token subjects may not use it
_FORMAT = re.compile(r"^crm_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    key: str            # shown to the creator once, never stored
    secret_hash: bytes


def generate() -> NewKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)  # 43 characters
    return NewKey(key_id=key_id, key=f"{PREFIX}_{key_id}_{secret}", secret_hash=hash_secret(secret))


def parse(key: str) -> tuple[str, str] | None:
    """``(key id, secret)``, or None when the string is not shaped like one of our keys."""
    found = _FORMAT.match(key)
    return (found.group(1), found.group(2)) if found else None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
