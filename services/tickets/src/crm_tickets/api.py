"""HTTP routes of the tickets service. Skeleton: health and metrics come from crm_shared."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])
