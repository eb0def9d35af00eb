"""The profile service's use cases: one function per command and per event batch.

Each takes a unit of work (``crm_shared.uow``) and plain values, and returns plain values or
raises a domain error (``crm_shared.errors``); routes and handlers only translate, and the entry
point that opened the unit of work commits.

- ``identity``: identity changes from the shop and from agents, and what they announce;
- ``activity``: the batches of orders, interactions, points, tickets, tiers and churn levels;
- ``merges``: merging two profiles and undoing it;
- ``privacy``: revealing PII (audited), the data export, erasure, the PII access log;
- ``customers``: search, notes and staff's paged reads;
- ``segment_definitions``: the custom segments staff define.
"""
