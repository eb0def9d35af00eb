"""HTTP middleware: request id, traceparent, structured request log and RED metrics.

Written as plain ASGI middleware: Starlette's BaseHTTPMiddleware adds a task and a memory
stream per request, which costs more than everything this does.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_shared.metrics import ServiceMetrics
from crm_shared.tracing import child_traceparent, current_traceparent, valid_traceparent

REQUEST_ID_HEADER = "x-request-id"
# The request id of the request being served, passed on to the services the gateway calls.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
        if len(request_id) > 200:
            request_id = str(uuid.uuid4())
        traceparent = child_traceparent(valid_traceparent(headers.get("traceparent")))
        token = current_traceparent.set(traceparent)
        request_id_token = current_request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id, traceparent=traceparent)
        method = scope["method"]
        status = 500
        started = time.perf_counter()
        self.metrics.http_active.labels(method).inc()

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode()),
                                      (b"traceparent", traceparent.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # The route template, never the raw path: customer ids must not explode label sets.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_active.labels(method).dec()
            self.metrics.http_duration.labels(method, template, str(status)).observe(elapsed)
            if template not in ("/metrics", "/livez", "/readyz"):
                structlog.get_logger("crm.http").info(
                    "request", method=method, route=template, status=status,
                    duration_ms=round(elapsed * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id", "traceparent")
            current_traceparent.reset(token)
            current_request_id.reset(request_id_token)
