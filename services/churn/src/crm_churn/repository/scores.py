"""Scores, the fitted models, the refit's lock and the metrics snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_UPSERT_SCORES = text("""
    INSERT INTO churn_scores AS s (customer_id, score, level, previous_level, level_changed_at, p_alive,
                                   expected_orders_90d, one_time_buyer, value_12m, value_at_risk, currency,
                                   reasons, indicators, model_version, history_version, scored_at)
    SELECT u.customer_id, u.score, u.level, NULL, :at, u.p_alive, u.expected, u.one_time,
           round(CAST(u.value_12m AS numeric), 4), round(CAST(u.value_at_risk AS numeric), 4), u.currency,
           CAST(u.reasons AS jsonb), CAST(u.indicators AS jsonb), :version, u.history_version, :at
    FROM unnest(CAST(:ids AS text[]), CAST(:scores AS float8[]), CAST(:levels AS text[]),
                CAST(:p_alive AS float8[]), CAST(:expected AS float8[]), CAST(:one_time AS boolean[]),
                CAST(:value AS float8[]), CAST(:at_risk AS float8[]), CAST(:currency AS text[]),
                CAST(:reasons AS text[]), CAST(:indicators AS text[]), CAST(:history_versions AS bigint[]))
         AS u(customer_id, score, level, p_alive, expected, one_time, value_12m, value_at_risk, currency, reasons,
              indicators, history_version)
    ON CONFLICT (customer_id) DO UPDATE SET
        score = excluded.score, level = excluded.level, previous_level = s.level,
        level_changed_at = CASE WHEN s.level IS DISTINCT FROM excluded.level THEN excluded.scored_at
                                ELSE s.level_changed_at END,
        p_alive = excluded.p_alive, expected_orders_90d = excluded.expected_orders_90d,
        one_time_buyer = excluded.one_time_buyer, value_12m = excluded.value_12m,
        value_at_risk = excluded.value_at_risk, currency = excluded.currency, reasons = excluded.reasons,
        indicators = excluded.indicators,
        model_version = excluded.model_version, history_version = excluded.history_version,
        scored_at = excluded.scored_at
    -- A score computed from an older history never replaces one computed from a newer history (a
    -- refit's rescoring chunk that read just before a consumer transaction committed). The row
    -- lock of ON CONFLICT makes this check see the committed version.
    WHERE s.history_version <= excluded.history_version
    RETURNING s.customer_id, s.level, s.previous_level
""")

_COLUMNS = """customer_id, score, level, previous_level, level_changed_at, p_alive, expected_orders_90d,
              one_time_buyer, value_12m, value_at_risk, currency, reasons, indicators, model_version, scored_at"""
_SCORE_OF = text(f"SELECT {_COLUMNS} FROM churn_scores WHERE customer_id = :id")
_SORTS = {"value_at_risk": "value_at_risk", "score": "score"}
_PAGES = {(sort, after): text(f"""
    SELECT {_COLUMNS} FROM churn_scores
    WHERE (CAST(:level AS text) IS NULL OR level = :level)
          {f"AND ({column} < :after OR ({column} = :after AND customer_id > :after_id))" if after else ""}
    ORDER BY {column} DESC, customer_id LIMIT :limit""") for sort, column in _SORTS.items() for after in (False, True)}

_LATEST_VERSION = text("SELECT version FROM churn_models ORDER BY trained_at DESC LIMIT 1")
_MODEL_PARAMS = text("SELECT version, kind, params FROM churn_models WHERE version = :v")
_LATEST_MODEL = text("""SELECT version, kind, params, report, trained_at, duration_s, created_by
                        FROM churn_models ORDER BY trained_at DESC LIMIT 1""")
_ADD_MODEL = text("""
    INSERT INTO churn_models (version, kind, params, report, trained_at, duration_s, created_by)
    VALUES (:version, :kind, CAST(:params AS jsonb), CAST(:report AS jsonb), :at, :duration, :actor)""")

_REFIT_LOCK = 0x63_68_75_72_6E  # "churn"
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:k)")
_UNLOCK = text("SELECT pg_advisory_unlock(:k)")

_BY_LEVEL = text("SELECT level, count(*) AS n FROM churn_scores GROUP BY level")
# A customer without a paid order has no currency, and no value at risk either.
_AT_RISK = text("SELECT level, currency, sum(value_at_risk) AS at_risk FROM churn_scores "
                "WHERE currency IS NOT NULL GROUP BY level, currency")
# The distribution: scores in ten equal-width bins (the last one closed), and the model they came from.
_HISTOGRAM = text("""SELECT LEAST(floor(score * 10)::int, 9) AS bin, count(*) AS n FROM churn_scores
                     GROUP BY 1 ORDER BY 1""")
_MODEL_REPORT = text("SELECT version, kind, report, trained_at FROM churn_models ORDER BY trained_at DESC LIMIT 1")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _score(row: Any) -> dict[str, Any]:
    values = dict(row._mapping)
    for name in ("reasons", "indicators"):
        values[name] = _json(values[name])
    return values


class ScoreStatements:
    _db: AsyncConnection

    async def upsert_scores(self, *, ids: Sequence[str], scores: Sequence[float], levels: Sequence[str],
                            p_alive: Sequence[float], expected: Sequence[float], one_time: Sequence[bool],
                            value: Sequence[float], at_risk: Sequence[float], currency: Sequence[str | None],
                            reasons: Sequence[Any], indicators: Sequence[Any], history_versions: Sequence[int],
                            version: str, at: datetime) -> list[tuple[str, str, str | None]]:
        """Store scores, except over one computed from a newer history; returns (customer, level,
        previous level) of each row written."""
        written = await self._db.execute(_UPSERT_SCORES, {
            "ids": list(ids), "scores": list(scores), "levels": list(levels), "p_alive": list(p_alive),
            "expected": list(expected), "one_time": list(one_time), "value": list(value), "at_risk": list(at_risk),
            "currency": list(currency), "reasons": [orjson.dumps(r).decode() for r in reasons],
            "indicators": [orjson.dumps(i).decode() for i in indicators],
            "history_versions": list(history_versions), "version": version, "at": at})
        return [(row.customer_id, row.level, row.previous_level) for row in written]

    async def score_of(self, customer_id: str) -> dict[str, Any] | None:
        row = (await self._db.execute(_SCORE_OF, {"id": customer_id})).first()
        return None if row is None else _score(row)

    async def scores_page(self, *, level: str | None, sort: str, after: tuple[Decimal | float, str] | None,
                          limit: int) -> list[dict[str, Any]]:
        """Scores, highest ``sort`` first, after the keyset ``after`` (value, customer id)."""
        rows = await self._db.execute(_PAGES[(sort, after is not None)], {
            "level": level, "after": after[0] if after else None, "after_id": after[1] if after else "",
            "limit": limit})
        return [_score(row) for row in rows]

    async def latest_model_version(self) -> str | None:
        return (await self._db.execute(_LATEST_VERSION)).scalar()

    async def model_params(self, version: str) -> tuple[str, dict[str, Any]]:
        """(kind, params) of a stored model."""
        row = (await self._db.execute(_MODEL_PARAMS, {"v": version})).one()
        return row.kind, _json(row.params)

    async def latest_model(self) -> dict[str, Any] | None:
        row = (await self._db.execute(_LATEST_MODEL)).first()
        if row is None:
            return None
        return {**row._mapping, "params": _json(row.params), "report": _json(row.report)}

    async def add_model(self, *, version: str, kind: str, params: dict[str, Any], report: dict[str, Any],
                        at: datetime, duration_s: float, actor: str) -> None:
        await self._db.execute(_ADD_MODEL, {
            "version": version, "kind": kind, "params": orjson.dumps(params).decode(),
            "report": orjson.dumps(report).decode(), "at": at, "duration": duration_s, "actor": actor})

    async def try_refit_lock(self) -> bool:
        """The session-wide advisory lock of the refit (one at a time across replicas); needs a
        connection that outlives transactions (a read-only unit of work)."""
        return bool((await self._db.execute(_TRY_LOCK, {"k": _REFIT_LOCK})).scalar())

    async def release_refit_lock(self) -> None:
        await self._db.execute(_UNLOCK, {"k": _REFIT_LOCK})

    async def distribution(self) -> dict[str, Any]:
        """Customers by level, value at risk by level and currency, and scores in ten bins."""
        return {"by_level": {row.level: row.n for row in await self._db.execute(_BY_LEVEL)},
                "at_risk": [(row.level, row.currency, row.at_risk) for row in await self._db.execute(_AT_RISK)],
                "bins": {row.bin: row.n for row in await self._db.execute(_HISTOGRAM)}}

    async def metrics_snapshot(self) -> dict[str, Any]:
        """Customers by level, value at risk by level and currency, the model in force."""
        by_level = {row.level: row.n for row in await self._db.execute(_BY_LEVEL)}
        at_risk = {(row.level, row.currency): float(row.at_risk) for row in await self._db.execute(_AT_RISK)}
        model = (await self._db.execute(_MODEL_REPORT)).first()
        auc = None
        if model is not None:
            holdout = (_json(model.report) or {}).get("holdout") or {}
            auc = holdout.get("auc")
        return {"by_level": by_level, "at_risk": at_risk, "auc": auc,
                "trained_at": model.trained_at.timestamp() if model is not None else None}
