"""RFC 9457 ``application/problem+json`` errors: every failure a client sees has this shape."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_shared.errors import DomainError
from crm_shared.logging import get_logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_RESPONSE = {"content": {PROBLEM_JSON: {}}}  # a route's ``responses=`` entry for problem+json answers
PROBLEM_BASE = "https://crm.example/problems/"

log = get_logger(__name__)


class Problem(Exception):
    """Raise from a route or a domain rule to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 type_: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_ or PROBLEM_BASE + title.lower().replace(" ", "-")
        self.extensions = extensions


class NotFound(Problem):
    def __init__(self, what: str, key: str) -> None:
        super().__init__(404, "Not found", f"{what} {key!r} does not exist")


def problem_response(status: int, title: str, detail: str | None = None, *,
                     type_: str | None = None, instance: str | None = None,
                     headers: dict[str, str] | None = None, **extensions: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, type_=exc.type,
                                instance=request.url.path, **exc.extensions)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        """The one translation of a use case's refusal into HTTP."""
        return problem_response(exc.status, exc.title, exc.detail, type_=PROBLEM_BASE + exc.code,
                                instance=request.url.path, **exc.extensions)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(exc.status_code, title, detail, instance=request.url.path,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem_response(422, "Invalid request", "The request does not match the schema; see errors.",
                                type_=PROBLEM_BASE + "invalid-request", instance=request.url.path,
                                errors=errors)

    # Database and network errors get their own handler: Starlette's catch-all for Exception runs
    # in its outermost middleware, which re-raises after answering, and uvicorn then closed the
    # connection (a client saw a dropped connection instead of the 503 for a deadlock).
    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from crm_shared.db import is_transient

        if (sqlstate := _data_exception(exc)) is not None:
            # A value the database cannot store (a NUL character in text, a number out of range,
            # an impossible date): the client's input, so a 422; the transaction rolled back.
            log.info("value refused by the database", path=request.url.path, sqlstate=sqlstate)
            return problem_response(422, "Invalid request", "A value in the request cannot be stored "
                                    "(for example a NUL character in a text, or a number out of range).",
                                    type_=PROBLEM_BASE + "invalid-value", instance=request.url.path)
        if is_transient(exc):  # the database restarting or out of connections: worth a retry
            log.warning("database unavailable", path=request.url.path, error=type(exc).__name__)
            return problem_response(503, "Service Unavailable", "The database is not reachable right now; retry.",
                                    instance=request.url.path, headers={"retry-after": "1"})
        # The cause goes to the log with the request id, never to the client.
        log.exception("unhandled error", path=request.url.path)
        return problem_response(500, "Internal Server Error", "An unexpected error occurred; it has been logged.",
                                instance=request.url.path)


# PostgreSQL data exceptions that mean "this input value cannot be stored" (not a bug of ours, such
# as a division by zero): 22000 is also what asyncpg raises for a value it cannot encode.
_INPUT_VALUE_STATES = {"22000", "22001", "22003", "22007", "22008", "22021", "22P02", "22P05"}


def _data_exception(exc: BaseException) -> str | None:
    """The SQLSTATE behind ``exc`` if it is a data exception about an input value, else None."""
    seen = 0
    while exc is not None and seen < 5:
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate if sqlstate in _INPUT_VALUE_STATES else None
        exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return None
