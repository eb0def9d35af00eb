"""HTTP routes of the gateway service. Skeleton: health and metrics come from crm_shared."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/gateway", tags=["gateway"])
