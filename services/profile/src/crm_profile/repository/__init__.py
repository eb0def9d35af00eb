"""All SQL of the customer archive, behind one class bound to the unit of work's connection.

Split by responsibility: customers and their identity (``customers``), what other services' events
change (``activity``), merges (``merges``), erasure (``erasure``), the privacy journal and export
(``audit``), staff's paged reads (``reads``) and the segment definitions (``segment_definitions``).
Methods take the caller's transaction and never commit; set-based, one statement per kind of row.
"""

from __future__ import annotations

from crm_profile.domain.changes import external_field, name_index_keys
from crm_profile.domain.records import IdentityChange
from crm_profile.repository.activity import ActivityQueries
from crm_profile.repository.audit import AuditQueries
from crm_profile.repository.customers import CustomerQueries
from crm_profile.repository.erasure import ErasureQueries
from crm_profile.repository.merges import MergeQueries
from crm_profile.repository.reads import ReadQueries
from crm_profile.repository.segment_definitions import SegmentQueries
from crm_profile.repository.segments import SegmentRepository

__all__ = ["IdentityChange", "ProfileRepository", "external_field", "name_index_keys"]


class ProfileRepository(CustomerQueries, ActivityQueries, MergeQueries, ErasureQueries, AuditQueries, ReadQueries,
                        SegmentQueries, SegmentRepository):
    """The profile service's repository: ``ProfileRepository(connection)``."""
