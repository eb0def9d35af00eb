"""The front door: every ``/v1/…`` request is matched, authenticated, authorized, rate-limited,
size-checked, then either proxied to its service or handed to the gateway's own routes.

Plain ASGI rather than FastAPI routes: a proxied request then costs no routing, dependency
resolution or response-model work, which keeps the gateway's added latency to a few tenths of
a millisecond (bench/gateway.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_shared.auth import IDENTITY_HEADER, Identity, Unauthenticated
from crm_shared.http import REQUEST_ID_HEADER, current_request_id
from crm_shared.problems import PROBLEM_BASE, Problem, problem_response
from crm_shared.tracing import current_traceparent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway.domain.routes import Route, is_session_path
from crm_gateway.upstream import response_headers

if TYPE_CHECKING:
    from crm_gateway.app import GatewayResources

# Request headers never passed to a service: hop-by-hop ones, the caller's credentials (the
# service gets the verified identity instead) and any identity header the caller made up.
_DROPPED_REQUEST_HEADERS = frozenset({
    b"host", b"connection", b"keep-alive", b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"content-length", b"authorization", b"x-api-key", b"cookie", IDENTITY_HEADER.encode(),
    REQUEST_ID_HEADER.encode(), b"traceparent", b"expect",
})


class BodyTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "Content Too Large", f"the request body exceeds {limit} bytes",
                         type_=PROBLEM_BASE + "body-too-large")


class FrontDoor:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        resources: GatewayResources = scope["app"].state.resources
        extra_headers: list[tuple[bytes, bytes]] = []
        try:
            match = resources.routes.match(scope["method"], scope["path"])
            route = match.route
            if route is None:
                if match.allowed_methods:
                    raise Problem(405, "Method Not Allowed", f"{scope['method']} is not supported here",
                                  allow=list(match.allowed_methods))
                raise Problem(404, "Not Found", "no such route")
            scope["route"] = route  # the metrics label the template, never the raw path
            identity: Identity | None = None
            if route.public:
                # Credentials are not even looked at: a bad token on an unsubscribe link must not
                # stop the unsubscription, and none reaches the service (dropped headers).
                decision = await resources.rate_limits.check_address(_address(scope))
                extra_headers = decision.headers(resources.rate_limits.public_policies)
            else:
                identity = await resources.authenticator.authenticate(scope["headers"], scope["method"])
                customer_id = match.params.get(route.customer_param) if route.customer_param else None
                identity.authorize(route.roles, scope=route.scope, customer_id=customer_id)
                decision = await resources.rate_limits.check(identity, customer_id)
                extra_headers = decision.headers(resources.rate_limits.policies)
            if not decision.allowed:
                resources.metrics.rate_limited.labels(decision.policy).inc()
                raise Problem(429, "Too Many Requests",
                              f"the {decision.policy} rate limit of {decision.limit} requests is used up; "
                              f"retry in {max(1, decision.reset_s)} s", type_=PROBLEM_BASE + "rate-limited")
            body = await _read_body(scope, receive, resources.settings.max_body_bytes)
            if route.upstream is None:
                # Only the sign-in routes are served without an identity (Route enforces it).
                assert identity is not None or is_session_path(route.path)
                await self._serve_locally(scope, body, identity, send, extra_headers)
            else:
                await self._proxy(scope, route, body, identity, send, extra_headers, resources)
        except Problem as problem:
            await _send_problem(scope, receive, send, problem, extra_headers)

    async def _serve_locally(self, scope: Scope, body: bytes, identity: Identity | None, send: Send,
                             extra_headers: list[tuple[bytes, bytes]]) -> None:
        if identity is not None:
            scope.setdefault("state", {})["identity"] = identity
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        await self.app(scope, replay, send_with_headers)

    async def _proxy(self, scope: Scope, route: Route, body: bytes, identity: Identity | None, send: Send,
                     extra_headers: list[tuple[bytes, bytes]], resources: GatewayResources) -> None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k not in _DROPPED_REQUEST_HEADERS]
        headers.extend(forwarding_headers(identity, resources, route.upstream))
        if scope.get("client"):
            headers.append(("x-forwarded-for", scope["client"][0]))
        target = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        upstream = resources.upstreams[route.upstream]
        response = await upstream.request(scope["method"], target, headers=headers, body=body,
                                          timeout_s=route.timeout_s or resources.settings.upstream_timeout_s,
                                          idempotent=route.idempotent, route=route.path)
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [*response_headers(response.headers),
                                (b"content-length", str(len(response.body)).encode()), *extra_headers]})
        await send({"type": "http.response.body", "body": response.body})


def forwarding_headers(identity: Identity | None, resources: GatewayResources,
                       service: str) -> list[tuple[str, str]]:
    """What every call to ``service`` carries: the identity signed for it alone (none on a public
    route), request id and trace context."""
    headers = [(IDENTITY_HEADER, resources.identity_codec.encode(identity, service))] if identity else []
    traceparent = current_traceparent.get()
    if traceparent:
        headers.append(("traceparent", traceparent))
    request_id = current_request_id.get()
    if request_id:
        headers.append((REQUEST_ID_HEADER, request_id))
    return headers


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refused with 413 past ``limit`` (checked before reading when the
    client declares its length, and while reading when it streams)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise Problem(400, "Bad Request", "Content-Length is not a number") from None
            if declared > limit:
                raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "Bad Request", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_problem(scope: Scope, receive: Receive, send: Send, problem: Problem,
                        extra_headers: list[tuple[bytes, bytes]]) -> None:
    extensions = dict(problem.extensions)
    headers = {k.decode(): v.decode() for k, v in extra_headers}
    if isinstance(problem, Unauthenticated):
        headers["www-authenticate"] = 'Bearer realm="crm"'
    if "allow" in extensions:
        headers["allow"] = ", ".join(extensions["allow"])
    if "retry_after" in extensions:
        headers["retry-after"] = str(extensions["retry_after"])
    response = problem_response(problem.status, problem.title, problem.detail, type_=problem.type,
                                instance=scope["path"], headers=headers, **extensions)
    await response(scope, receive, send)
