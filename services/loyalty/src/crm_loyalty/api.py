"""HTTP routes of the loyalty service. Skeleton: health and metrics come from crm_shared."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty"])
