"""Periodic jobs of the gateway: none. It keeps no state that ages (API keys are revoked by a
supervisor, never expire), and its gauges (breakers, upstream readiness) are read or probed on
demand, not refreshed on a timer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_shared.background import PeriodicJob

if TYPE_CHECKING:
    from crm_shared.service import ServiceRuntime

    from crm_gateway.app import GatewayResources


def periodic_jobs(runtime: ServiceRuntime, resources: GatewayResources) -> list[PeriodicJob]:
    return []
