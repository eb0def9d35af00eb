"""HTTP routes of the loyalty service, one module per resource: accounts (balances, ledger,
redemptions, adjustments, the programme and jobs), adjustment requests (above an agent's limit),
the reward catalogue, coupons and the reports.
Each route parses, checks the caller's role, calls one use case (``usecases/``) and maps the result
to a schema; domain errors become problem+json in ``crm_shared.problems``."""

from crm_loyalty.api import accounts, adjustment_requests, coupons, reports, rewards, rules

routers = [accounts.router, rewards.router, coupons.router, coupons.validation_router, reports.router,
           rules.router, adjustment_requests.router]
