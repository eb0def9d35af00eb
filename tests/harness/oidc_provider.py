"""A fake OpenID Connect identity provider, in its own process (an outside system: a fake is fine).

    python -m tests.harness.oidc_provider --port P --client-id C --client-secret S --audience A \
        --subject agent-7 --role agent

Discovery, ``/authorize`` (approves at once: redirects to redirect_uri with a code and the state),
``/token`` (checks the client, the redirect_uri, and the PKCE verifier against the S256 challenge;
a code works once; answers an RS256 access token with sub/role for the API and an id token with the
nonce), ``/jwks``. ``OidcProvider`` starts it from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness.mail import free_port, spawn, stop_process, wait_listening


def build_app(*, issuer: str, client_id: str, client_secret: str, audience: str, subject: str,
              role: str) -> web.Application:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "fake-1", "use": "sig",
           "alg": "RS256"}
    codes: dict[str, dict] = {}

    async def discovery(_request: web.Request) -> web.Response:
        return web.json_response({"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
                                  "token_endpoint": f"{issuer}/token", "jwks_uri": f"{issuer}/jwks",
                                  "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def authorize(request: web.Request) -> web.Response:
        q = request.query
        if (q.get("response_type") != "code" or q.get("client_id") != client_id or not q.get("redirect_uri")
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")
                or "openid" not in q.get("scope", "").split()):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(24)
        codes[code] = {"challenge": q["code_challenge"], "nonce": q.get("nonce"), "redirect_uri": q["redirect_uri"]}
        location = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}"
        raise web.HTTPFound(location)

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        client, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client != client_id or secret != client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = codes.pop(str(form.get("code", "")), None)  # a code works once
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (form.get("grant_type") != "authorization_code" or grant is None
                or grant["redirect_uri"] != form.get("redirect_uri") or challenge != grant["challenge"]):
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        headers = {"kid": "fake-1"}
        access = jwt.encode({"iss": issuer, "aud": audience, "sub": subject, "role": role, "iat": now,
                             "exp": now + 3600}, key, algorithm="RS256", headers=headers)
        id_token = jwt.encode({"iss": issuer, "aud": client_id, "sub": subject, "nonce": grant["nonce"],
                               "iat": now, "exp": now + 3600}, key, algorithm="RS256", headers=headers)
        return web.json_response({"access_token": access, "id_token": id_token, "token_type": "Bearer",
                                  "expires_in": 3600})

    async def jwks(_request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    app.router.add_get("/jwks", jwks)
    return app


class OidcProvider:
    """``with OidcProvider(tmp_path, …) as idp:`` → ``idp.issuer``; the process is stopped after."""

    def __init__(self, folder: Path, *, client_id: str, client_secret: str, audience: str, subject: str,
                 role: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id, self.client_secret, self.audience = client_id, client_secret, audience
        self._args = ["--port", str(self.port), "--client-id", client_id, "--client-secret", client_secret,
                      "--audience", audience, "--subject", subject, "--role", role]
        self.log_path = folder / "oidc_provider.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> OidcProvider:
        self.process = wait_listening(spawn(["-m", "tests.harness.oidc_provider", *self._args], self.log_path),
                                      self.log_path)
        return self

    def __exit__(self, *_exc: object) -> None:
        stop_process(self.process)


async def _serve(args: argparse.Namespace) -> None:
    app = build_app(issuer=f"http://127.0.0.1:{args.port}", client_id=args.client_id,
                    client_secret=args.client_secret, audience=args.audience, subject=args.subject, role=args.role)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print("listening", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--port", "--client-id", "--client-secret", "--audience", "--subject", "--role"):
        parser.add_argument(name, required=True, type=int if name == "--port" else str)
    # The harness stops this stand-in identity provider with a signal: a quiet exit, not a traceback.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
