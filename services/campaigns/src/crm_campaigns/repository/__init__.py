"""All SQL of the campaigns service, behind one repository bound to the unit of work's connection.

Split by responsibility: ``members`` (the projection, conversions, erasure and merges),
``audiences`` (definitions as SQL), ``definitions`` (audiences, templates and campaigns as managed
through the API), ``planning`` (campaigns in force, occurrences, contacts and their queue),
``messages`` (delivery status, suppressions) and ``results``. Repositories never commit.
"""

from __future__ import annotations

from crm_campaigns.repository.audiences import AudiencesSql
from crm_campaigns.repository.definitions import DefinitionsSql
from crm_campaigns.repository.members import MembersSql
from crm_campaigns.repository.messages import MessagesSql
from crm_campaigns.repository.planning import PlanningSql
from crm_campaigns.repository.results import ResultsSql

__all__ = ["CampaignsRepository"]


class CampaignsRepository(MembersSql, AudiencesSql, DefinitionsSql, PlanningSql, MessagesSql, ResultsSql):
    """The campaigns database, on one connection (``CampaignsRepository(conn)``)."""
