"""Addresses as keyed digests: how a bounced address is suppressed without being kept."""

from __future__ import annotations

import hashlib
import hmac
import uuid

_MESSAGE_IDS = uuid.UUID("6f1c0e7a-2b1d-4c55-9a43-2f2d1b6c9e10")


def normalise(channel: str, address: str) -> str:
    return address.strip().lower() if channel == "email" else "".join(c for c in address if c.isdigit() or c == "+")


def address_digest(key: bytes, channel: str, address: str) -> bytes:
    """HMAC-SHA256 of the normalised address: equal for the same address, useless without the key."""
    return hmac.new(key, f"{channel}:{normalise(channel, address)}".encode(), hashlib.sha256).digest()


def message_id_for(campaign_id: str, occurrence_key: str, customer_id: str, channel: str) -> str:
    """The same id for the same contact and channel on every attempt: the providers' dedupe key."""
    return str(uuid.uuid5(_MESSAGE_IDS, f"{campaign_id}\x1f{occurrence_key}\x1f{customer_id}\x1f{channel}"))
