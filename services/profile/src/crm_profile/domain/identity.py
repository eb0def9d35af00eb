"""Identity rules of the customer archive (pure functions, no I/O).

Identifiers are normalised before they are encrypted and indexed, so that one person written
three ways is one value: e-mail lower-cased, phone numbers in E.164. Junk values that shops
put in required fields ("null", "n/a", "0000000") mean unknown, never an identifier: two
customers must not be matched or merged on them.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

_JUNK = frozenset({"", "null", "none", "nil", "n/a", "na", "-", "unknown", "undefined", "test", "noemail",
                   "no-email", "none@none.com", "test@test.com", "noreply@noreply.com"})
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def is_junk(value: str | None) -> bool:
    """Placeholders, blanks, and numbers whose last seven digits are one digit repeated
    (0000000, +86 130 0000 0000, 1111111)."""
    if value is None:
        return True
    cleaned = value.strip().lower()
    if cleaned in _JUNK:
        return True
    digits = re.sub(r"\D", "", cleaned)
    return "@" not in cleaned and len(digits) >= 7 and len(set(digits[-7:])) == 1


def normalise_email(email: str | None) -> str | None:
    """E-mail addresses are compared case-insensitively; blank or junk means unknown."""
    if email is None or is_junk(email):
        return None
    email = unicodedata.normalize("NFKC", email).strip().lower()
    return email or None


def is_valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email))


def normalise_phone(phone: str | None, default_region: str = "CN") -> str | None:
    """A phone number in E.164 (``+8613800138000``), whatever way it was written; None when it is
    not a possible number. Numbers without a country code are read in ``default_region``."""
    if phone is None or is_junk(phone):
        return None
    text = unicodedata.normalize("NFKC", phone).strip()
    if text.startswith("00"):
        text = "+" + text[2:]  # international prefix written as 00
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def name_search_key(name: str) -> str:
    """How names are compared in search: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def name_prefixes(name: str | None, longest: int = 12) -> set[str]:
    """Every prefix (1 to ``longest`` characters) of the whole name and of each word, so that
    "wei", "li w" and "李" all find "Li Wei" / "李伟" without storing the name in clear."""
    if not name:
        return set()
    key = name_search_key(name)
    prefixes: set[str] = set()
    for part in {key, *key.split(" ")}:
        prefixes.update(part[:n] for n in range(1, min(len(part), longest) + 1))
    return prefixes
