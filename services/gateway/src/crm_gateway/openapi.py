"""One OpenAPI document for the whole public API, served at ``/openapi.json`` and shown at ``/docs``.

The gateway's own routes come from FastAPI; each proxied route's operation comes from its
service's ``/openapi.json``, so the document cannot drift from what the services do. Only routes
in the route table are published, each with the roles allowed to call it. A service that is down
or not deployed (campaigns is optional) is named in ``info.x-crm-missing-upstreams`` and its
routes are left out until it answers: no operation is published that nothing would serve.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

if TYPE_CHECKING:
    from crm_gateway.app import GatewayResources

router = APIRouter(include_in_schema=False)

# A document missing a service (down at the time) is kept only briefly, then fetched again.
INCOMPLETE_CACHE_S = 10.0

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "A JWT from the identity provider (dev: `crm token --role agent --sub agent-1`). "
                                  "Claims: sub, role (customer, agent, supervisor, service, marketer), customer_id "
                                  "(customers; defaults to sub), scope (service callers), exp, iss, aud."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "An API key of a server-side integration (role service, limited to its scopes)."},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "crm_session",
                      "description": "The console's session (set by POST /v1/session/dev or the OIDC callback), used "
                                     "when no Authorization or X-API-Key header is sent. POST, PUT, PATCH and DELETE "
                                     "then also need X-CSRF-Token: the crm_csrf cookie's value."},
}


@router.get("/openapi.json")
async def openapi_document(request: Request) -> JSONResponse:
    resources: GatewayResources = request.app.state.resources
    return JSONResponse(await resources.openapi.document(request.app))


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="CRM API")


class MergedOpenApi:
    def __init__(self, resources: GatewayResources) -> None:
        self._resources = resources
        self._document: dict[str, Any] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def document(self, app) -> dict[str, Any]:
        async with self._lock:
            if self._document is None or time.monotonic() > self._expires:
                self._document, complete = await self._build(app)
                self._expires = float("inf") if complete else time.monotonic() + INCOMPLETE_CACHE_S
            return self._document

    async def _build(self, app) -> tuple[dict[str, Any], bool]:
        settings = self._resources.settings
        document = get_openapi(title="CRM API", version=app.version, routes=app.routes,
                               description="The public API of the CRM: every route of the gateway, "
                                           "including those answered by the profile, loyalty, tickets, "
                                           "churn and campaigns services.")
        document.setdefault("components", {}).setdefault("schemas", {})
        names = [n for n in settings.upstream_urls if any(r.upstream == n for r in self._resources.routes.routes)]
        fetched = await asyncio.gather(*(self._fetch(n) for n in names))
        missing = []
        for name, upstream_doc in zip(names, fetched, strict=True):
            if upstream_doc is None:
                missing.append(name)
            else:
                merge_upstream(document, name, upstream_doc, self._resources.routes.routes)
        for route in self._resources.routes.routes:
            operation = document["paths"].get(route.path, {}).get(route.method.lower())
            if operation is not None:
                operation["description"] = (operation.get("description", "") + "\n\n" + access_note(route)).strip()
                operation["x-crm-roles"] = sorted(route.roles)
                if route.public:
                    operation["security"] = []
                    operation["x-crm-public"] = True
        document["components"]["securitySchemes"] = SECURITY_SCHEMES
        document["security"] = [{"bearerAuth": []}, {"apiKey": []}, {"sessionCookie": []}]
        for path in ("/livez", "/readyz"):
            for operation in document["paths"].get(path, {}).values():
                operation["security"] = []
        if missing:
            document["info"]["x-crm-missing-upstreams"] = missing
        return document, not missing

    async def _fetch(self, name: str) -> dict[str, Any] | None:
        upstream = self._resources.upstreams[name]
        try:
            async with self._resources.session.get(upstream.base_url + "/openapi.json",
                                                   timeout=aiohttp.ClientTimeout(total=2.0)) as response:
                if response.status != 200:
                    return None
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None


def access_note(route) -> str:
    if route.public and route.upstream is None:
        return ("**Public:** no token, API key or session needed: the gateway's own sign-in route. "
                "Rate-limited per calling address.")
    if route.public:
        return ("**Public:** no token or API key; the gateway forwards no identity, and the service checks the "
                "request's signature. Rate-limited per calling address.")
    roles = ", ".join(sorted(route.roles))
    scope = f"; service callers need scope `{route.scope}`" if route.scope else ""
    own = "; a customer only their own id" if route.customer_param else ""
    return f"**Allowed roles:** {roles}{scope}{own}."


def merge_upstream(document: dict[str, Any], upstream: str, upstream_doc: dict[str, Any], routes) -> None:
    """Copy the operations of ``upstream`` that the route table publishes, with their schemas.

    A schema whose name is taken by a different schema is renamed ``<Upstream><Name>``.
    """
    upstream_doc = copy.deepcopy(upstream_doc)
    schemas = document["components"]["schemas"]
    theirs = upstream_doc.get("components", {}).get("schemas", {})
    renames = {name: f"{upstream.capitalize()}{name}" for name, schema in theirs.items()
               if name in schemas and schemas[name] != schema}
    if renames:
        upstream_doc = _rewrite_refs(upstream_doc, renames)
        theirs = upstream_doc.get("components", {}).get("schemas", {})
    published = {(r.path, r.method.lower()) for r in routes if r.upstream == upstream}
    used_refs: set[str] = set()
    for path, operations in upstream_doc.get("paths", {}).items():
        for method, operation in operations.items():
            if (path, method) in published:
                document["paths"].setdefault(path, {})[method] = operation
                used_refs |= _refs(operation)
    # Only the schemas the published operations need, and what those need in turn.
    pending = list(used_refs)
    while pending:
        name = pending.pop()
        schema = theirs.get(name)
        if schema is None or name in schemas:
            continue
        schemas[name] = schema
        pending.extend(_refs(schema))


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.rsplit("/", 1)[1]
                value = f"#/components/schemas/{renames.get(name, name)}"
            elif key == "schemas" and isinstance(value, dict):
                value = {renames.get(k, k): _rewrite_refs(v, renames) for k, v in value.items()}
                result[key] = value
                continue
            result[key] = _rewrite_refs(value, renames)
        return result
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node
