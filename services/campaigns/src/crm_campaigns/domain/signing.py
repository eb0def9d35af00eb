"""HMAC-SHA256 signatures of webhook bodies, and unsubscribe tokens.

Webhook signature (header ``X-CRM-Signature``): ``t=<unix seconds>,v1=<hex>`` where hex is
HMAC-SHA256(secret, f"{t}.".encode() + body). The timestamp is signed with the body, so a captured
request cannot be replayed outside ``tolerance_s``. During a key rotation the sender may put several
``v1=`` values (one per secret); a verifier accepts if any matches any of its secrets. Comparisons are
constant-time (``hmac.compare_digest``).

Unsubscribe token: URL-safe base64 (no padding) of the message id's 16 UUID bytes followed by the first
16 bytes (128 bits) of HMAC-SHA256(key, "unsubscribe:" + those bytes). It carries only the message id:
no customer id, e-mail or phone, so a token in a URL or a log leaks nothing about the person.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Iterable

SCHEME = "v1"
_TOKEN_PURPOSE = b"unsubscribe:"
_TAG_BYTES = 16
MAX_HEADER_CHARS = 4096


class BadSignature(ValueError):
    """The signature or token is missing, malformed, expired or does not match; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _digest(secret: bytes, body: bytes, timestamp: int) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value ``t=<timestamp>,v1=<hex>`` signing ``body`` at ``timestamp`` with ``secret``."""
    return f"t={int(timestamp)},{SCHEME}={_digest(secret, body, int(timestamp))}"


def verify(secret: bytes | Iterable[bytes], body: bytes, header: str | None, now: int, tolerance_s: int = 300) -> None:
    """Returns when ``header`` signs ``body`` with ``secret`` (or one of several secrets) and its timestamp is
    within ``tolerance_s`` of ``now``; raises ``BadSignature`` otherwise. Unknown schemes (``v0=``…) are ignored.
    """
    secrets = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
    if not secrets:
        raise ValueError("no secret to verify with")
    timestamp, candidates = _parse(header)
    if abs(now - timestamp) > tolerance_s:
        raise BadSignature("timestamp outside the tolerance")
    expected = [_digest(bytes(key), body, timestamp) for key in secrets]
    # Every pair is compared (no early exit) so the time taken says nothing about which one matched.
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate.encode("ascii", "replace"), digest.encode("ascii"))
    if not matched:
        raise BadSignature("signature does not match")


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise BadSignature("missing signature")
    if len(header) > MAX_HEADER_CHARS:
        raise BadSignature("malformed signature")
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator:
            raise BadSignature("malformed signature")
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            candidates.append(value.strip().lower())
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise BadSignature("malformed signature timestamp")
    if not candidates:
        raise BadSignature(f"no {SCHEME} signature")
    return int(timestamps[0]), candidates


def _tag(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, _TOKEN_PURPOSE + message, hashlib.sha256).digest()[:_TAG_BYTES]


def unsubscribe_token(key: bytes, message_id: str) -> str:
    """A URL-safe token naming ``message_id`` (a UUID string), authenticated with ``key``; 43 characters."""
    raw = uuid.UUID(message_id).bytes
    return base64.urlsafe_b64encode(raw + _tag(key, raw)).rstrip(b"=").decode("ascii")


def read_unsubscribe_token(key: bytes, token: str) -> str:
    """The message id (canonical UUID string) in ``token``; raises ``BadSignature`` if it was not made with ``key``."""
    if not token or len(token) > 64 or not token.isascii():
        raise BadSignature("malformed token")
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as error:
        raise BadSignature("malformed token") from error
    # The decoder skips stray characters and ignores the last character's spare bits: only the canonical
    # spelling is accepted, so one message has exactly one token.
    if len(decoded) != 16 + _TAG_BYTES or base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() != token:
        raise BadSignature("malformed token")
    raw, tag = decoded[:16], decoded[16:]
    if not hmac.compare_digest(tag, _tag(key, raw)):
        raise BadSignature("token does not match")
    return str(uuid.UUID(bytes=raw))
