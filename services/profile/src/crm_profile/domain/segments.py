"""Value segments: RFM names and rule-based custom segments (pure, no I/O).

A custom segment's rule is JSON: conditions combined with ``all``, ``any`` and ``not``::

    {"all": [{"bought": {"category": "tea", "within_days": 90}},
             {"no_order_within_days": 30},
             {"field": "net_spent", "op": ">=", "value": 500},
             {"has_tag": "vip"}]}

It is compiled into one SQL condition over the customer facts (``FACTS_SQL``), with every value
a bound parameter: a rule can never inject SQL, and an unknown field or operator is refused
when the segment is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# ---- RFM: scores 1–5 from quintiles, names from the scores

RFM_SEGMENTS = ("champions", "loyal", "potential", "new", "at_risk", "cannot_lose", "hibernating", "lost")


@dataclass(frozen=True)
class RfmRule:
    """A named segment for the scores within these bounds (inclusive; each 1–5, 5 best)."""

    name: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)

    def matches(self, r: int, f: int, m: int) -> bool:
        return all(low <= score <= high for score, (low, high) in ((r, self.r), (f, self.f), (m, self.m)))


# The first rule that matches names the segment; the last matches everything, so every
# combination has exactly one name. One definition for Python (``rfm_segment``) and for the SQL
# of the scheduled refresh (``rfm_segment_sql``), so the two cannot drift apart.
RFM_RULES = (
    RfmRule("cannot_lose", r=(1, 2), f=(4, 5), m=(4, 5)),  # big, frequent spenders who stopped buying
    RfmRule("champions", r=(4, 5), f=(4, 5), m=(4, 5)),
    RfmRule("loyal", r=(3, 5), f=(3, 5)),
    RfmRule("new", r=(4, 5), f=(1, 1)),
    RfmRule("potential", r=(3, 5)),                        # recent, not yet frequent
    RfmRule("at_risk", f=(3, 5)),                          # used to buy often, not lately
    RfmRule("hibernating", r=(2, 2)),
    RfmRule("lost"),
)


def rfm_segment(r: int, f: int, m: int) -> str:
    """The named segment of an RFM score (each 1–5, 5 best). Every combination has exactly one."""
    return next(rule.name for rule in RFM_RULES if rule.matches(r, f, m))


def rfm_segment_sql(r: str, f: str, m: str) -> str:
    """``rfm_segment`` as a SQL expression over the score columns ``r``, ``f`` and ``m``."""
    branches = []
    for rule in RFM_RULES[:-1]:
        scores = ((r, rule.r), (f, rule.f), (m, rule.m))
        bounds = [f"{column} BETWEEN {low} AND {high}" for column, (low, high) in scores if (low, high) != (1, 5)]
        branches.append(f"WHEN {' AND '.join(bounds)} THEN '{rule.name}'")
    return f"CASE {' '.join(branches)} ELSE '{RFM_RULES[-1].name}' END"


# ---- custom segment rules

NUMERIC_FIELDS = {
    "order_count": "f.order_count",
    "net_spent": "f.net_spent",
    "return_rate": "f.return_rate",
    "days_since_last_order": "f.days_since_last_order",
    "days_since_first_order": "f.days_since_first_order",
    "rfm_r": "f.rfm_r", "rfm_f": "f.rfm_f", "rfm_m": "f.rfm_m",
    "activity_7d": "f.activity_7d", "activity_30d": "f.activity_30d", "activity_90d": "f.activity_90d",
}
TEXT_FIELDS = {"rfm_segment": "f.rfm_segment", "tier": "f.tier", "churn_level": "f.churn_level",
               "city": "f.city", "gender": "f.gender"}
OPERATORS = {"=": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldCondition(_Strict):
    field: Literal[tuple(NUMERIC_FIELDS) + tuple(TEXT_FIELDS)]  # type: ignore[valid-type]
    op: Literal["=", "!=", ">", ">=", "<", "<="]
    value: float | Name


class Bought(_Strict):
    category: Name
    within_days: int = Field(ge=1, le=3650)


class BoughtCondition(_Strict):
    bought: Bought


class NoOrderCondition(_Strict):
    no_order_within_days: int = Field(ge=1, le=3650)


class TagCondition(_Strict):
    has_tag: Name


class AllOf(_Strict):
    all: list[Rule] = Field(min_length=1, max_length=50)


class AnyOf(_Strict):
    any: list[Rule] = Field(min_length=1, max_length=50)


class NotRule(_Strict):
    not_: Rule = Field(alias="not")


Rule = AllOf | AnyOf | NotRule | FieldCondition | BoughtCondition | NoOrderCondition | TagCondition
for _model in (AllOf, AnyOf, NotRule):
    _model.model_rebuild()


class CompiledRule:
    """SQL text over the facts alias ``f`` and its bound parameters."""

    def __init__(self, rule: Rule) -> None:
        self.params: dict[str, Any] = {}
        self.uses_activity = False
        self.sql = self._compile(rule)

    def _param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def _compile(self, rule: Rule) -> str:
        if isinstance(rule, AllOf):
            return "(" + " AND ".join(self._compile(r) for r in rule.all) + ")"
        if isinstance(rule, AnyOf):
            return "(" + " OR ".join(self._compile(r) for r in rule.any) + ")"
        if isinstance(rule, NotRule):
            return f"(NOT COALESCE({self._compile(rule.not_)}, false))"
        if isinstance(rule, BoughtCondition):
            return ("EXISTS (SELECT 1 FROM customer_categories cc WHERE cc.customer_id = f.customer_id "
                    f"AND cc.category = {self._param(rule.bought.category)} "
                    f"AND cc.last_bought_at > now() - make_interval(days => {self._param(rule.bought.within_days)}))")
        if isinstance(rule, NoOrderCondition):
            return (f"(f.last_order_at IS NULL OR f.last_order_at <= now() - make_interval(days => "
                    f"{self._param(rule.no_order_within_days)}))")
        if isinstance(rule, TagCondition):
            return f"({self._param(rule.has_tag)} = ANY(f.tags))"
        if rule.field in NUMERIC_FIELDS:
            if not isinstance(rule.value, int | float):
                raise ValueError(f"{rule.field} compares with a number")
            self.uses_activity = self.uses_activity or rule.field.startswith("activity_")
            return f"({NUMERIC_FIELDS[rule.field]} {OPERATORS[rule.op]} {self._param(float(rule.value))})"
        if rule.op not in ("=", "!="):
            raise ValueError(f"{rule.field} supports = and != only")
        return f"({TEXT_FIELDS[rule.field]} {OPERATORS[rule.op]} {self._param(str(rule.value))})"


def facts_sql(*, with_activity: bool) -> str:
    """One row of facts per customer (not erased). ``:currency`` is the RFM currency."""
    activity = """,
        (SELECT count(*) FROM timeline t WHERE t.customer_id = c.customer_id AND t.kind LIKE 'interaction.%'
            AND t.occurred_at > now() - interval '7 days') AS activity_7d,
        (SELECT count(*) FROM timeline t WHERE t.customer_id = c.customer_id AND t.kind LIKE 'interaction.%'
            AND t.occurred_at > now() - interval '30 days') AS activity_30d,
        (SELECT count(*) FROM timeline t WHERE t.customer_id = c.customer_id AND t.kind LIKE 'interaction.%'
            AND t.occurred_at > now() - interval '90 days') AS activity_90d""" if with_activity else ""
    return f"""
        SELECT c.customer_id, c.order_count, c.tags, c.city, c.gender, c.tier, c.churn_level,
               c.rfm_r, c.rfm_f, c.rfm_m, c.rfm_segment, c.last_order_at,
               COALESCE(s.amount - s.refunded, 0) AS net_spent,
               CASE WHEN c.order_count > 0 THEN c.refunded_order_count::float8 / c.order_count ELSE 0 END
                   AS return_rate,
               EXTRACT(EPOCH FROM now() - c.last_order_at) / 86400 AS days_since_last_order,
               EXTRACT(EPOCH FROM now() - c.first_order_at) / 86400 AS days_since_first_order{activity}
        FROM customers c
        LEFT JOIN customer_spend s ON s.customer_id = c.customer_id AND s.currency = :currency
        WHERE c.erased_at IS NULL AND c.merged_into IS NULL"""


def parse_rule(stored: Any) -> Rule:
    """A rule as stored (``segments.rule``: JSON text or already decoded), validated."""
    from pydantic import TypeAdapter

    value = orjson.loads(stored) if isinstance(stored, str | bytes) else stored
    return TypeAdapter(Rule).validate_python(value)
