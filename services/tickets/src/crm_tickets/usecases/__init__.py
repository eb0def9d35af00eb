"""The tickets service's use cases: one async function per command and per event batch.

Each takes a unit of work (``crm_shared.uow``) and plain values, returns plain values, and raises
``crm_shared.errors`` when a rule refuses; none commits (the route, the consumer or the job that
opened the unit of work does). ``tickets`` opens and edits tickets, ``workflow`` moves them along
with their SLA clocks, ``events`` applies other services' events, ``sla`` is the breach sweep,
``admin`` the policy, queues, agents and knowledge base, ``reports`` the supervisors' figures.
"""
