"""Placeholder: written by the definitions/results work of issue 20."""

from __future__ import annotations

from crm_campaigns.repository.base import Sql


class ResultsSql(Sql):
    pass
