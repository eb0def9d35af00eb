"""How a batch of identity changes folds into one write per customer (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from crm_profile.domain.identity import name_prefixes
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.records import IdentityChange

CONSENT_CHANNELS = ("email", "sms")


class ConsentChange(NamedTuple):
    """One row of the consent history (the first five fields, in the table's column order) and why it
    changed, as ``crm.profile.consent.changed`` says it (``reason``)."""

    customer_id: str
    channel: str
    granted: bool
    changed_at: datetime
    source: str                 # the event source, agent:<id>, unsubscribe, erasure
    reason: str                 # registration | update | agent | unsubscribe | erasure



def name_index_keys(vault: PiiVault, name: str | None) -> set[bytes]:
    """The blind indexes a name is found by (customer_name_index): one per prefix."""
    return {vault.index("name", prefix) for prefix in name_prefixes(name)}


def external_field(kind: str) -> str:
    """The field an external identifier of this kind is sealed and indexed under."""
    return f"external:{kind}"


def fold_changes(changes: list[IdentityChange]) -> dict[str, IdentityChange]:
    """One change per customer: later values win, fields not said keep the earlier ones."""
    merged: dict[str, IdentityChange] = {}
    for change in changes:
        current = merged.get(change.customer_id)
        if current is None:
            merged[change.customer_id] = IdentityChange(**{**change.__dict__, "consents": dict(change.consents)})
            continue
        for name in ("email", "phone", "name", "address", "birthday", "gender", "city", "registered_at", "tags",
                     "locale", "time_zone"):
            value = getattr(change, name)
            if value is not None:
                setattr(current, name, value)
        current.consents.update(change.consents)
        current.changed_at, current.source = change.changed_at, change.source
    return merged


def consent_changes(current: dict[str, dict[str, bool | None]], changes: list[IdentityChange]
                    ) -> tuple[list[ConsentChange], dict[tuple[str, str], tuple[bool, datetime, str]]]:
    """Every consent that really changed, in order (also several of one customer in one batch), and
    the last one per customer and channel. ``current``: the stored consents (updated in place). A
    registration's consents count as changes even when they equal what is stored (a profile created
    by an earlier order event, a registration sent again): it is the shop's statement of them, and
    the campaigns service learns a new customer's consents from it."""
    rows: list[ConsentChange] = []
    last: dict[tuple[str, str], tuple[bool, datetime, str]] = {}
    for change in changes:
        state = current.setdefault(change.customer_id, {"email": None, "sms": None})
        for channel, granted in change.consents.items():
            if state[channel] != granted or change.consent_reason == "registration":
                rows.append(ConsentChange(change.customer_id, channel, granted, change.changed_at, change.source,
                                          change.consent_reason))
                last[(change.customer_id, channel)] = (granted, change.changed_at, change.source)
                state[channel] = granted
    return rows, last
