"""Serves the console's files. No templating: the page is the same for everyone, and what a user
may see is decided by the API calls it makes with their session, never by this route."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).parent / "static"
# Scripts and styles only from the gateway's own files: no inline script, no eval, no third-party
# origin. A successful injection of markup could then run nothing, and the session cookie is
# HttpOnly besides.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                           "form-action 'self'; object-src 'none'")
HEADERS = {"content-security-policy": CONTENT_SECURITY_POLICY, "x-content-type-options": "nosniff",
           "referrer-policy": "no-referrer", "x-frame-options": "DENY",
           # Revalidated on every load (cheap: an ETag), so a new release shows at once.
           "cache-control": "no-cache"}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
               ".png": "image/png", ".md": "text/plain"}

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/")
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/console/static/{path:path}")
async def console_file(path: str) -> FileResponse:
    file = (STATIC / path).resolve()
    # Only files inside the static folder: "..", absolute paths and symlinks out are not found.
    if not file.is_relative_to(STATIC.resolve()) or not file.is_file() or file.suffix not in MEDIA_TYPES:
        raise HTTPException(404, "no such file")
    return FileResponse(file, media_type=MEDIA_TYPES[file.suffix], headers=HEADERS)
