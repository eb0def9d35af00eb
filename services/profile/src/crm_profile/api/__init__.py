"""HTTP routes of the profile service: parse, check the caller's role, call one use case, map the result.

``router`` (``/v1/profiles``: ``customers``, ``privacy``, ``merges``), ``audit_router``
(``/v1/audit``) and ``segments_router`` (``/v1/segments``) are what app.py mounts.
"""

from crm_profile.api import customers, merges, privacy, segments  # noqa: F401  (their routes register)
from crm_profile.api.common import audit_router, router, segments_router

__all__ = ["audit_router", "router", "segments_router"]
