"""The loyalty service's use cases: one async function per command and per event batch.

Each takes a unit of work (``crm_shared.uow``; its ``repo`` is ``repository.LoyaltyRepository``)
and plain values, and returns plain values or raises a domain error (``crm_shared.errors``). The
rules live here and in ``domain/``; the SQL behind the repository. Nothing here commits: the route,
the consumer (for a batch) or the job that opened the unit of work does.

- ``orders``: paid orders earn (the hot path), completions release, cancellations and refunds;
- ``customers``: memberships, birthdays, win-back offers, erasure;
- ``commands``: redemptions and agents' adjustments;
- ``merges``: following profile merges and unmerges;
- ``rules``: earning beyond spend (sign-up, first order, reviews, referrals);
- ``ledger_jobs``: release, expiry, notices, tiers, birthdays, discount holds;
- ``programme`` and ``reads``: the programme's versions and what members read;
- ``common``: the tier rule, giving spent points back, saving books, the programme store.
"""
