"""Identity rules of the customer archive (pure functions, no I/O)."""

from __future__ import annotations


def normalise_email(email: str | None) -> str | None:
    """E-mail addresses are compared case-insensitively; blank means unknown."""
    if email is None:
        return None
    email = email.strip().lower()
    return email or None


def normalise_phone(phone: str | None) -> str | None:
    """Keep a leading + and digits only; blank means unknown. (Full E.164 parsing: profile issue.)"""
    if phone is None:
        return None
    kept = "".join(ch for ch in phone.strip() if ch.isdigit() or ch == "+")
    if kept.count("+") > 1 or ("+" in kept and not kept.startswith("+")):
        kept = "+" + kept.replace("+", "")
    return kept if any(ch.isdigit() for ch in kept) else None
