"""The profile service's use cases: one function per command and per event batch.

Each takes a unit of work (``crm_shared.uow``) and plain values, and returns plain values or
raises a domain error (``crm_shared.errors``); routes and handlers only translate.
"""
