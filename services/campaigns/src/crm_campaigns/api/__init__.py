"""HTTP routes of the campaigns service, one module per resource; ``routers`` is what app.py mounts."""

from __future__ import annotations

from fastapi import APIRouter

from crm_campaigns.api import definitions, public, results

routers: list[APIRouter] = [definitions.router, results.router, public.router]
