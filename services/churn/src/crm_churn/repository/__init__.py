"""All SQL of the churn service, behind one class bound to the unit of work's connection.

Split by concern: ``history`` (features as of any moment, set-based), ``ingest`` (recording the
events' history), ``scores`` (scores, models, the refit lock, the metrics snapshot), ``merges``
(moving history on a merge and back, erasure). Repositories never commit.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_churn.repository.history import HistoryQueries
from crm_churn.repository.ingest import IngestStatements
from crm_churn.repository.merges import MergeStatements
from crm_churn.repository.scores import ScoreStatements


class ChurnRepository(HistoryQueries, IngestStatements, ScoreStatements, MergeStatements):
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection


__all__ = ["ChurnRepository"]
