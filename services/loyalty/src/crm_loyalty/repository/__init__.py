"""All SQL of the loyalty service, behind one repository bound to the unit of work's connection.

Split by responsibility: members' books (``accounts``: lock, lots, ledger rows, account rows,
birthdays, agents' allowances, erasure), ``orders`` (orders, points spent on them, rolling spend,
win-backs), ``programme`` (its versions and the periodic jobs' scans), ``merges``, ``reads``
(what the API shows, the metrics' totals), ``rewards`` (the reward catalogue), ``reports`` (the
liability), ``rules`` (the earning rules' grants, referrals and fingerprints), ``bonuses`` (bonus
points granted by reference, for campaigns) and ``adjustment_requests`` (adjustments waiting for a
supervisor). Set-based:
multi-row ``unnest`` statements, one round trip per kind of row. Repositories never commit.
"""

from __future__ import annotations

from crm_loyalty.domain.members import Member, Spent
from crm_loyalty.repository.accounts import AccountsSql
from crm_loyalty.repository.adjustment_requests import AdjustmentRequestsSql
from crm_loyalty.repository.bonuses import BonusesSql
from crm_loyalty.repository.coupons import CouponsSql
from crm_loyalty.repository.merges import MergesSql
from crm_loyalty.repository.orders import OrdersSql
from crm_loyalty.repository.programme import ProgrammeSql
from crm_loyalty.repository.reads import ReadsSql
from crm_loyalty.repository.reports import ReportsSql
from crm_loyalty.repository.rewards import RewardsSql
from crm_loyalty.repository.rules import RulesSql

__all__ = ["LoyaltyRepository", "Member", "Spent"]


class LoyaltyRepository(AccountsSql, OrdersSql, ProgrammeSql, MergesSql, ReadsSql, RewardsSql, CouponsSql,
                        ReportsSql, RulesSql, BonusesSql, AdjustmentRequestsSql):
    """The loyalty database, on one connection (``LoyaltyRepository(conn)``)."""
