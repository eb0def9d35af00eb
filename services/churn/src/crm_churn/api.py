"""HTTP routes of the churn service. Skeleton: health and metrics come from crm_shared."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/churn", tags=["churn"])
