"""Webhook signatures (format, tolerance, rotation, tampering) and unsubscribe tokens (round trip, tamper, no PII)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest
from crm_campaigns.domain.signing import BadSignature, read_unsubscribe_token, sign, unsubscribe_token, verify

SECRET = b"whsec-test-secret"
BODY = b'{"message_id":"m-1","status":"delivered"}'
T = 1_796_659_200


def test_signature_format_is_the_documented_one():
    expected = hmac.new(SECRET, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_signature_verifies():
    verify(SECRET, BODY, sign(SECRET, BODY, T), now=T)
    verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 300)
    verify(SECRET, BODY, sign(SECRET, BODY, T), now=T - 300)
    verify(SECRET, BODY, " " + sign(SECRET, BODY, T).replace(",", " , ").upper().replace("T=", "t=")
           .replace("V1=", "v1="), now=T)


@pytest.mark.parametrize(("header", "now", "reason"), [
    (None, T, "missing"),
    ("", T, "missing"),
    ("garbage", T, "malformed"),
    (f"v1={'0' * 64}", T, "timestamp"),
    (f"t=abc,v1={'0' * 64}", T, "timestamp"),
    (f"t={T},t={T},v1={'0' * 64}", T, "timestamp"),
    (f"t={T}", T, "no v1"),
    (f"t={T},v0=abc", T, "no v1"),
    (f"t={T},v1={'0' * 64}", T, "does not match"),
    (f"t={T},v1=", T, "does not match"),
    (f"t={T},v1=é", T, "does not match"),
    ("t=1," + "v1=x," * 2000, T, "malformed"),
])
def test_bad_headers_are_refused_with_a_reason(header, now, reason):
    with pytest.raises(BadSignature, match=reason) as caught:
        verify(SECRET, BODY, header, now=now)
    assert caught.value.reason


def test_a_stale_or_future_signature_is_refused():
    header = sign(SECRET, BODY, T)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(SECRET, BODY, header, now=T + 301)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(SECRET, BODY, header, now=T - 301)
    verify(SECRET, BODY, header, now=T + 3600, tolerance_s=3600)


def test_tampering_is_detected():
    header = sign(SECRET, BODY, T)
    with pytest.raises(BadSignature):
        verify(SECRET, BODY + b" ", header, now=T)
    with pytest.raises(BadSignature):
        verify(b"another secret", BODY, header, now=T)
    # moving the timestamp (to dodge the tolerance) breaks the signature
    moved = header.replace(f"t={T}", f"t={T + 1000}")
    with pytest.raises(BadSignature, match="does not match"):
        verify(SECRET, BODY, moved, now=T + 1000)


def test_key_rotation_several_v1_values_and_several_secrets():
    old, new = b"old-secret", b"new-secret"
    both = f"{sign(old, BODY, T)},v1={sign(new, BODY, T).split('v1=')[1]}"
    verify(old, BODY, both, now=T)
    verify(new, BODY, both, now=T)
    verify([b"unrelated", new], BODY, sign(new, BODY, T), now=T)
    with pytest.raises(BadSignature):
        verify(b"third", BODY, both, now=T)
    with pytest.raises(ValueError):
        verify([], BODY, both, now=T)


def test_bad_signature_is_a_value_error():
    assert issubclass(BadSignature, ValueError)


KEY = b"unsubscribe-key"
MESSAGE = "4b0c6c2e-1f1a-4f6e-9a43-0d7f3c2b9e11"


def test_unsubscribe_token_round_trip():
    token = unsubscribe_token(KEY, MESSAGE)
    assert read_unsubscribe_token(KEY, token) == MESSAGE
    assert len(token) == 43
    assert all(c.isalnum() or c in "-_" for c in token)  # safe in a URL path as is


def test_unsubscribe_token_is_deterministic_and_distinct_per_message():
    assert unsubscribe_token(KEY, MESSAGE) == unsubscribe_token(KEY, MESSAGE.upper())
    tokens = {unsubscribe_token(KEY, str(uuid.UUID(int=i))) for i in range(1000)}
    assert len(tokens) == 1000


def test_unsubscribe_token_carries_only_the_message_id():
    raw = base64.urlsafe_b64decode(unsubscribe_token(KEY, MESSAGE) + "=")
    assert raw[:16] == uuid.UUID(MESSAGE).bytes and len(raw) == 32


def test_tampered_tokens_are_refused():
    token = unsubscribe_token(KEY, MESSAGE)
    other = unsubscribe_token(KEY, str(uuid.uuid4()))
    spliced = other[:21] + token[21:]
    for bad in (spliced, token[:-1], token + "A", token[:10] + ("A" if token[10] != "A" else "B") + token[11:]):
        with pytest.raises(BadSignature):
            read_unsubscribe_token(KEY, bad)
    with pytest.raises(BadSignature, match="does not match"):
        read_unsubscribe_token(b"other key", token)


@pytest.mark.parametrize("bad", ["", "!!!!", "a" * 43, "x" * 200, "é" * 43, "AAAA====", "a b c"])
def test_malformed_tokens_are_refused(bad):
    with pytest.raises(BadSignature):
        read_unsubscribe_token(KEY, bad)


def test_non_canonical_spellings_are_refused():
    token = unsubscribe_token(KEY, MESSAGE)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    sibling = token[:-1] + alphabet[last ^ 1]  # flips a spare bit: same bytes, different string
    assert base64.urlsafe_b64decode(sibling + "=") == base64.urlsafe_b64decode(token + "=")
    with pytest.raises(BadSignature, match="malformed"):
        read_unsubscribe_token(KEY, sibling)
    with pytest.raises(BadSignature, match="malformed"):
        read_unsubscribe_token(KEY, token[:20] + "." + token[20:])


def test_a_non_uuid_message_id_is_an_error():
    with pytest.raises(ValueError):
        unsubscribe_token(KEY, "customer@example.com")
