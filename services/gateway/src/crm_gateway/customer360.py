"""The customer 360: one document from the services, fetched concurrently within a budget.

A part that fails or is not back when the budget runs out is marked ``unavailable`` and the
rest is returned: an agent on the phone is better served by three parts now than by an error.
A part the route table would refuse this caller is ``forbidden`` without asking its service.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from crm_shared.auth import Forbidden, Identity
from crm_shared.problems import NotFound, Problem

from crm_gateway.domain.routes import RouteTable
from crm_gateway.proxy import forwarding_headers
from crm_gateway.schemas import Customer360Read, PartRead

if TYPE_CHECKING:
    from crm_gateway.app import GatewayResources


@dataclass(frozen=True)
class PartSource:
    part: str       # key in the document
    upstream: str   # service that owns it
    target: str     # path and query on that service; {customer_id} is filled in, URL-encoded
    # A list (the customer's open tickets) answers 200 for anybody, empty for a stranger: an empty
    # list says nothing about whether the customer exists.
    is_list: bool = False
    # Whether this part can tell that the customer exists. Campaign contacts cannot: a campaign
    # reaches only customers the profile holds, so they never know a customer the profile does not.
    identifies_customer: bool = True

    def knows_customer(self, part: PartRead) -> bool:
        if not self.identifies_customer:
            return False
        if part.status != "ok":
            return part.status == "unavailable"  # cannot tell: do not call the customer unknown
        return not self.is_list or bool((part.data or {}).get("items"))


PARTS = (
    PartSource("profile", "profile", "/v1/profiles/{customer_id}"),
    PartSource("loyalty", "loyalty", "/v1/loyalty/accounts/{customer_id}"),
    PartSource("open_tickets", "tickets", "/v1/tickets?customer_id={customer_id}&status=active", is_list=True),
    PartSource("churn", "churn", "/v1/churn/customers/{customer_id}"),
    PartSource("campaign_contacts", "campaigns", "/v1/campaign-contacts?customer_id={customer_id}&limit=10",
               is_list=True, identifies_customer=False),
)
FORBIDDEN_PART = PartRead(status="forbidden", reason="this caller may not see this part")


def part_from_answer(status: int, body: bytes) -> PartRead:
    """What a service's answer means for its part of the 360."""
    if status == 200:
        try:
            return PartRead(status="ok", data=orjson.loads(body))
        except orjson.JSONDecodeError:
            return PartRead(status="unavailable", reason="the service answered with invalid JSON")
    if status == 404:
        return PartRead(status="not_found")
    if status == 403:  # this caller may not see that part (a customer and their churn risk): not a failure
        return FORBIDDEN_PART
    return PartRead(status="unavailable", reason=f"the service answered {status}")


def may_read(source: PartSource, customer_id: str, identity: Identity, routes: RouteTable) -> bool:
    """Whether the route table lets this caller read the part's route (the service would refuse
    otherwise): a customer's own 360 then asks nothing of a service they may not call."""
    route = routes.match("GET", source.target.split("?", 1)[0]).route
    if route is None:  # a part whose route is not published: its service decides alone
        return True
    try:
        identity.authorize(route.roles, scope=route.scope, customer_id=customer_id if route.customer_param else None)
    except Forbidden:
        return False
    return True


async def assemble(customer_id: str, identity: Identity, resources: GatewayResources) -> Customer360Read:
    budget = resources.settings.customer360_budget_s

    async def fetch(source: PartSource) -> PartRead:
        if not may_read(source, customer_id, identity, resources.routes):
            return FORBIDDEN_PART
        upstream = resources.upstreams[source.upstream]
        try:
            answer = await upstream.request("GET", source.target.format(customer_id=quote(customer_id, safe="")),
                                            headers=forwarding_headers(identity, resources, source.upstream),
                                            timeout_s=budget, idempotent=True,
                                            route="customer360")
        except Problem as problem:
            return PartRead(status="unavailable", reason=problem.detail)
        return part_from_answer(answer.status, answer.body)

    tasks = {source.part: asyncio.create_task(fetch(source)) for source in PARTS}
    # Each call already stops at the budget; this guards against anything that would not.
    done, pending = await asyncio.wait(tasks.values(), timeout=budget + 0.05)
    for task in pending:
        task.cancel()
    parts: dict[str, Any] = {}
    for name, task in tasks.items():
        if task not in done:
            parts[name] = PartRead(status="unavailable", reason="no answer in time")
        elif task.exception() is not None:
            parts[name] = PartRead(status="unavailable", reason="the call failed")
        else:
            parts[name] = task.result()
    if not any(source.knows_customer(parts[source.part]) for source in PARTS):
        raise NotFound("customer", customer_id)
    return Customer360Read(customer_id=customer_id,
                           complete=all(p.status != "unavailable" for p in parts.values()), **parts)
