"""Personal data at rest and on screen (pure, no I/O).

- :class:`PiiVault` encrypts each value with AES-256-GCM under a key derived from ``PII_KEY``;
  the field name is authenticated with it, so a ciphertext copied into another column does not
  decrypt. A leading version byte leaves room for a new format.
- :attr:`PiiVault.key_id` names the master key without revealing it, so the journal of key
  rotations (pii_rotation.py) can say which key the data is under.
- Blind indexes are HMAC-SHA256 of the normalised value under a second derived key: equal
  values give equal indexes (exact lookup, duplicate detection) and nothing can be read back.
- Masking decides what a caller who may not see PII gets instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE_BYTES = 12


class PiiVault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("PII_KEY must hold at least 32 bytes")
        self._aead = AESGCM(_derive(master_key, b"crm-profile pii encryption v1"))
        self._index_key = _derive(master_key, b"crm-profile pii blind index v1")
        # 16 hex digits derived like the other keys (HKDF is one-way): safe to log and store.
        self.key_id = _derive(master_key, b"crm-profile pii key id v1")[:8].hex()

    def seal(self, field: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, value.encode(), field.encode())

    def open(self, field: str, sealed: bytes | None) -> str | None:
        if sealed is None:
            return None
        sealed = bytes(sealed)
        if sealed[:1] != _VERSION:
            raise ValueError("unknown PII ciphertext version")
        nonce, ciphertext = sealed[1:1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, field.encode()).decode()

    def index(self, field: str, normalised: str | None) -> bytes | None:
        if normalised is None:
            return None
        return hmac.new(self._index_key, f"{field}\x1f{normalised}".encode(), hashlib.sha256).digest()


def _derive(master_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master_key)


# ---- masking: what a caller without the PII permission sees

def mask_email(email: str | None) -> str | None:
    if email is None:
        return None
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'*' * max(3, len(local) - 1)}@{domain}" if domain else "***"


def mask_phone(phone: str | None) -> str | None:
    if phone is None:
        return None
    keep_start = 3 if phone.startswith("+") else 0
    return phone[:keep_start] + "*" * max(3, len(phone) - keep_start - 4) + phone[-4:]


def mask_name(name: str | None) -> str | None:
    if name is None:
        return None
    return " ".join(word[:1] + "*" * max(1, len(word) - 1) for word in name.split())


def mask_address(address: str | None) -> str | None:
    return None if address is None else "***"
