"""When two profiles may be merged, and a merge undone (pure: the use cases hold them to it).

Junk values are never indexed (domain/identity.py), so two profiles can never be merged on "null",
"0000000" or an empty value: a shared blind index is a shared usable identifier.
"""

from __future__ import annotations

from crm_shared.errors import ConflictError, NotFoundError, RuleViolation

from crm_profile.domain.records import MergeCandidate

# The problem type of a refusal of an unprocessable merge (``unprocessable-content``, as always).
UNPROCESSABLE = "unprocessable-content"


def refuse_merge(survivor: str, merged: str, rows: dict[str, MergeCandidate], identifier: str) -> None:
    """Raise why ``merged`` may not be merged into ``survivor`` (nothing when it may)."""
    for customer_id in (survivor, merged):
        if customer_id not in rows:
            raise NotFoundError(f"customer {customer_id!r} does not exist")
        if rows[customer_id].merged_into is not None:
            raise ConflictError(f"customer {customer_id!r} was already merged into {rows[customer_id].merged_into!r}")
        if rows[customer_id].erased_at is not None:
            raise RuleViolation(f"customer {customer_id!r} was erased", code=UNPROCESSABLE)
    column = f"{identifier}_bidx"
    shared = getattr(rows[survivor], column)
    if shared is None or shared != getattr(rows[merged], column):
        raise RuleViolation(f"the two profiles do not share a usable {identifier}", code=UNPROCESSABLE)


def refuse_self_merge(survivor: str, merged: str) -> None:
    if survivor == merged:
        raise RuleViolation("a profile cannot be merged into itself", code=UNPROCESSABLE)


def refuse_unmerge(survivor: str, merged: str, rows: dict[str, MergeCandidate]) -> None:
    """Raise why the merge of ``merged`` into ``survivor`` may not be undone (nothing when it may)."""
    for customer_id in (survivor, merged):
        if customer_id not in rows:
            raise NotFoundError(f"customer {customer_id!r} does not exist")
    if rows[merged].merged_into != survivor:
        raise NotFoundError(f"customer {merged!r} is not merged into {survivor!r}")
    if rows[survivor].merged_into is not None:
        raise ConflictError(f"customer {survivor!r} was merged into {rows[survivor].merged_into!r} since: "
                            "undo that merge first")
    for customer_id in (survivor, merged):
        if rows[customer_id].erased_at is not None:
            raise RuleViolation(f"customer {customer_id!r} was erased", code=UNPROCESSABLE)


def merged_stats(gone: MergeCandidate) -> dict[str, object]:
    """The duplicate's statistics, journaled with the merge for review."""
    return {"order_count": gone.order_count, "refunded_order_count": gone.refunded_order_count,
            "first_order_at": gone.first_order_at, "last_order_at": gone.last_order_at}
