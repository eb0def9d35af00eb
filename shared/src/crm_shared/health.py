"""``/livez`` (the process answers), ``/readyz`` (database and broker reachable), ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from crm_shared.problems import PROBLEM_JSON

router = APIRouter(tags=["operations"])

READY_TIMEOUT_S = 2.0


@router.get("/livez", summary="Liveness: the process is up")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database and broker reachable",
            responses={503: {"content": {PROBLEM_JSON: {}}}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database and the broker answer. A service with more to check (the gateway's
    upstreams) offers ``readiness()`` on its resources: extra checks, and whether it is ready."""
    runtime = request.app.state.runtime
    checks = {"database": await _check(_database(runtime)), "broker": await _check(_broker(runtime))}
    ready = all(v == "ok" for v in checks.values())
    resources = getattr(request.app.state, "resources", None)
    if hasattr(resources, "readiness"):
        extra_checks, extra_ready = await resources.readiness()
        checks.update(extra_checks)
        ready = ready and extra_ready
    if ready:
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        return JSONResponse({"status": status, "checks": checks})
    return JSONResponse({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                         "detail": "a dependency is not reachable", "checks": checks},
                        status_code=503, media_type=PROBLEM_JSON)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.runtime.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


async def _check(probe) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await probe
        return "ok"
    except Exception as exc:  # any failure means not ready; the reason is for the operator
        return f"failed: {type(exc).__name__}"


async def _database(runtime) -> None:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _broker(runtime) -> None:
    ok = await runtime.producer.client.force_metadata_update()
    if not ok:
        raise ConnectionError("no broker answered a metadata request")
