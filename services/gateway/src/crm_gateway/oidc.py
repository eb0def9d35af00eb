"""OpenID Connect for the console's sign-in: the provider's discovery document, the token exchange,
the id_token check, and the signed cookie that carries a sign-in's state across the round trip.

Written on aiohttp (the gateway's HTTP session, its timeouts and pool) and PyJWT, both already
dependencies: the code flow with PKCE is three HTTP calls and one JWT check, and a client library
(authlib) would bring its own HTTP stack and JOSE code for that.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import orjson
from crm_shared.logging import get_logger
from crm_shared.problems import Problem

from crm_gateway.authn import JwksKeys
from crm_gateway.settings import GatewaySettings

log = get_logger(__name__)

STATE_TTL_S = 600  # a sign-in must come back from the provider within 10 minutes
ID_TOKEN_ALGORITHMS = ["RS256", "ES256", "PS256"]  # public-key algorithms only; never HS* or none
# Where a sign-in may return to: a path of the console on this origin. Starting with "/console/"
# rules out "//host" and "scheme:" (both would leave the origin); no backslash (some browsers read
# "/\host" as "//host"), no dot segments, no whitespace or control characters.
_RETURN_TO = re.compile(r"^/console/[A-Za-z0-9\-._~!$&'()*+,;=:@/?#%]*$")


class SignInRefused(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "Bad Request", detail)


def safe_return_to(value: str) -> str | None:
    if len(value) > 512 or not _RETURN_TO.match(value) or "//" in value:
        return None
    path = value.split("?", 1)[0].split("#", 1)[0]
    if any(segment in ("..", ".", "%2e%2e", "%2e", ".%2e", "%2e.") for segment in path.lower().split("/")):
        return None
    return value


def pkce_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


def new_sign_in(return_to: str) -> dict[str, Any]:
    """What one sign-in must remember until the callback: kept in the signed state cookie."""
    return {"state": secrets.token_urlsafe(32), "nonce": secrets.token_urlsafe(32),
            "verifier": secrets.token_urlsafe(64), "return_to": return_to, "exp": int(time.time()) + STATE_TTL_S}


class StateCookie:
    """A sign-in's state, signed (HMAC-SHA256) so nobody can plant one; it carries no personal data,
    only random values and the console path to return to."""

    def __init__(self, auth_secret: str) -> None:
        self._key = hmac.new(auth_secret.encode(), b"crm console oidc state v1", hashlib.sha256).digest()

    def seal(self, data: dict[str, Any]) -> str:
        payload = _b64(orjson.dumps(data))
        return f"{payload}.{self._sign(payload)}"

    def open(self, value: str | None) -> dict[str, Any] | None:
        if not value:
            return None
        payload, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or data["exp"] < time.time():
            return None
        return data

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


class OidcProvider:
    """The configured identity provider, as its discovery document describes it (cached)."""

    def __init__(self, settings: GatewaySettings, session: aiohttp.ClientSession) -> None:
        assert settings.oidc_issuer_url and settings.oidc_client_id and settings.oidc_redirect_url
        self.issuer = settings.oidc_issuer_url
        self.client_id = settings.oidc_client_id
        self.redirect_url = settings.oidc_redirect_url
        self._secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        self._scopes = settings.oidc_scopes
        self._leeway = settings.jwt_leeway_s
        self._jwks_cache_s = settings.jwks_cache_s
        self._cache_s = settings.oidc_discovery_cache_s
        self._session = session
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._keys: JwksKeys | None = None
        self._lock = asyncio.Lock()

    async def authorization_url(self, sign_in: dict[str, Any]) -> str:
        metadata = await self.metadata()
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_url,
                 "scope": self._scopes, "state": sign_in["state"], "nonce": sign_in["nonce"],
                 "code_challenge": pkce_challenge(sign_in["verifier"]), "code_challenge_method": "S256"}
        endpoint = metadata["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """The token endpoint's answer for ``code``; the provider checks ``verifier`` (PKCE)."""
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_url,
                "code_verifier": verifier, "client_id": self.client_id}
        auth = aiohttp.BasicAuth(self.client_id, self._secret) if self._secret else None
        try:
            async with self._session.post(metadata["token_endpoint"], data=form, auth=auth,
                                          timeout=aiohttp.ClientTimeout(total=5)) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("OIDC token exchange failed", error=type(exc).__name__)
            raise Problem(502, "Bad Gateway", "the identity provider did not answer the code exchange") from None
        if status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            # The provider's error code (invalid_grant, …) is a fixed word; nothing of the code is logged.
            log.info("OIDC code refused", status=status, error=str(error)[:40])
            raise SignInRefused("the identity provider refused the sign-in code")
        if not isinstance(body.get("access_token"), str) or not isinstance(body.get("id_token"), str):
            raise SignInRefused("the identity provider sent no access token or id token")
        return body

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The id_token's claims once its signature, issuer, audience, expiry and nonce check out."""
        await self.metadata()
        assert self._keys is not None
        try:
            header = jwt.get_unverified_header(id_token)
            algorithm = header.get("alg")
            if algorithm not in ID_TOKEN_ALGORITHMS:
                raise SignInRefused(f"id tokens signed with {algorithm!r} are not accepted")
            key = await self._keys.key(header.get("kid"), algorithm)
            claims = jwt.decode(id_token, key, algorithms=ID_TOKEN_ALGORITHMS, audience=self.client_id,
                                issuer=self.issuer, leeway=self._leeway,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise SignInRefused(f"the id token is not valid: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInRefused("the id token was issued to another client")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise SignInRefused("the id token's nonce does not match this sign-in")
        return claims

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._fetched_at > self._cache_s:
            async with self._lock:
                if self._metadata is None or time.monotonic() - self._fetched_at > self._cache_s:
                    await self._discover()
        assert self._metadata is not None
        return self._metadata

    async def _discover(self) -> None:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
            # OpenID Connect Discovery §4.3: the document must name exactly the issuer asked for.
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                raise ValueError("the discovery document names another issuer")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    raise ValueError(f"the discovery document has no {name}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("OIDC discovery failed", url=url, error=str(exc))
            if self._metadata is None:
                raise Problem(503, "Service Unavailable", "the identity provider cannot be reached right now") from None
            return  # keep the document we have
        if self._keys is None or document["jwks_uri"] != self._metadata.get("jwks_uri"):
            self._keys = JwksKeys(document["jwks_uri"], self._session, self._jwks_cache_s)
        self._metadata = document
        self._fetched_at = time.monotonic()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
