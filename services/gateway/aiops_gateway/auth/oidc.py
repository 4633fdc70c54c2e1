"""OIDC bearer tokens: a JWT signed by one of the issuer's published keys (JWKS), for this gateway's audience.

Checked: the signature (with an asymmetric algorithm of ``gateway_oidc_algorithms``, never ``none`` or HS*: the
issuer's public keys must not double as HMAC secrets), ``iss``, ``aud``, ``exp`` and ``nbf`` (30 s of leeway for
clock skew) and a ``sub``. The role comes from ``gateway_oidc_role_claim``.

The JWKS is fetched on first use and kept; a token naming a key id (``kid``) the set lacks makes it fetched again
(keys rotate), at most once per :attr:`OidcVerifier.refetch_after_s`, so a flood of made-up key ids costs the issuer
one request per interval. The set is also refreshed when older than an hour, so a key the issuer withdrew stops
working. An issuer that cannot be reached is a 503 (retry), not a refusal of the token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import httpx
import jwt
import structlog

from aiops_gateway.auth.roles import Principal, Role
from aiops_gateway.errors import ApiError
from aiops_gateway.settings import GatewaySettings

__all__ = ["OidcVerifier", "role_from_claims"]

log = structlog.get_logger(__name__)

_LEEWAY_S = 30
_MAX_TOKEN_CHARS = 16_384  # far above any real token; larger is refused before it is parsed
_ROLE_NAMES = frozenset(r.value for r in Role)
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}  # algorithm family -> JWK kty


def _key_type(algorithm: str) -> str | None:
    return _KEY_TYPES.get(algorithm[:2])


def _challenge(message: str) -> dict[str, str]:
    description = message.replace("\\", "").replace('"', "'")
    return {"WWW-Authenticate": f'Bearer realm="aiops", error="invalid_token", error_description="{description}"'}


def _invalid(message: str) -> ApiError:
    return ApiError(401, message, _challenge(message))


def role_from_claims(claims: dict[str, Any], path: str) -> tuple[Role | None, list[str]]:
    """The highest known role the claim at ``path`` (dots reach into objects) names, and every name it holds.

    A claim whose own name is ``path`` wins over the dotted reading (namespaced claims such as
    ``https://example.com/roles`` hold dots). The claim may be a string or a list of strings; names compare without
    regard to case. A string is one name, never split: a group called "Site Admin" must not make anyone admin.
    """
    value: Any = claims.get(path) if path in claims else claims
    if path not in claims:
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    names: list[str] = []
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, list):
        names = [v for v in value if isinstance(v, str)]
    known = [Role(n.strip().lower()) for n in names if n.strip().lower() in _ROLE_NAMES]
    best = max(known, key=lambda r: r.rank, default=None)
    return best, names


class OidcVerifier:
    """Turns a bearer token of the configured issuer into a :class:`Principal` (401/403/503 otherwise)."""

    #: Seconds between two fetches of the JWKS prompted by unknown key ids (or by a failed fetch).
    refetch_after_s: float = 30.0
    #: Seconds before a successfully fetched JWKS is fetched again anyway (keys the issuer withdrew stop working).
    max_age_s: float = 3600.0

    def __init__(self, settings: GatewaySettings) -> None:
        self.issuer = settings.gateway_oidc_issuer
        self.audience = settings.gateway_oidc_audience
        if not self.audience:
            raise ValueError(
                "AIOPS_GATEWAY_OIDC_AUDIENCE must be set with AIOPS_GATEWAY_OIDC_ISSUER: without it, tokens the"
                " issuer made for any other application would be accepted here"
            )
        self.jwks_url = settings.gateway_oidc_jwks_url or f"{self.issuer.rstrip('/')}/.well-known/jwks.json"
        refused = [a for a in settings.gateway_oidc_algorithms if _key_type(a) is None]
        if refused:
            raise ValueError(
                f"AIOPS_GATEWAY_OIDC_ALGORITHMS: {', '.join(refused)} not accepted; only asymmetric algorithms"
                " (RS256, PS256, ES256, EdDSA, ...) verify a token with the issuer's public keys"
            )
        self.algorithms = list(settings.gateway_oidc_algorithms)
        unknown = set(self.algorithms) - set(jwt.algorithms.get_default_algorithms())
        if not self.algorithms or unknown:
            raise ValueError(f"AIOPS_GATEWAY_OIDC_ALGORITHMS: unknown {sorted(unknown)} (or empty)")
        self.role_claim = settings.gateway_oidc_role_claim
        self.timeout_s = min(settings.gateway_request_timeout_s, 10.0)
        self._jwks: dict[str, dict[str, Any]] = {}  # kid ("" for a key without one) -> the JWK
        self._prepared: dict[tuple[str, str], jwt.PyJWK] = {}
        self._loaded_at: float | None = None  # monotonic time of the last successful fetch
        self._tried_at: float | None = None  # monotonic time of the last fetch, successful or not
        self._last_error = ""
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Principal:
        claims = await self.claims(token)
        role, names = role_from_claims(claims, self.role_claim)
        name = next(
            (str(claims[c]) for c in ("preferred_username", "email", "sub") if isinstance(claims.get(c), str)), ""
        )
        if role is None:
            held = f"it holds {names}" if names else "it has no such claim"
            raise ApiError(
                403,
                f"the token of {name} names no role of this gateway in its {self.role_claim!r} claim ({held});"
                f" one of {', '.join(r.value for r in Role)} is needed",
            )
        return Principal(name, role, "oidc", str(claims["sub"]))

    async def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once every check passed."""
        if len(token) > _MAX_TOKEN_CHARS:
            raise _invalid("the bearer token is too long to be a token of the issuer")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("the bearer token is neither an API key (aiops_...) nor a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise _invalid(
                f"the bearer token is signed with {algorithm!r}; this gateway accepts {', '.join(self.algorithms)}"
            )
        kid = header.get("kid") or ""
        key = await self._key(str(kid), str(algorithm))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.audience,
                issuer=self.issuer,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the bearer token has expired; get a new one from the issuer") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the bearer token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise _invalid(f"the bearer token is for another audience; this gateway is {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise _invalid(f"the bearer token is from another issuer; this gateway trusts {self.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise _invalid(f"the bearer token's signature does not verify with the issuer's key {kid!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"the bearer token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"the bearer token is not valid: {exc}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _invalid("the bearer token's 'sub' claim is not a non-empty string")
        return claims

    async def _key(self, kid: str, algorithm: str) -> jwt.PyJWK:
        now = time.monotonic()
        fresh = self._loaded_at is not None and now - self._loaded_at < self.max_age_s
        if not (fresh and kid in self._jwks):
            async with self._lock:  # one fetch for all the requests that wait on it
                await self._refresh(kid)
        jwk = self._jwks.get(kid)
        if jwk is None and not kid and len(self._jwks) == 1:
            jwk = next(iter(self._jwks.values()))  # a token without kid, an issuer with one key
        if jwk is None:
            if self._loaded_at is None or self._last_error:  # not a refusal of the token: the issuer is away
                raise ApiError(
                    503,
                    f"the OIDC issuer's signing keys ({self.jwks_url}) cannot be fetched: {self._last_error}; retry",
                    {"Retry-After": str(max(1, round(self.refetch_after_s)))},
                )
            what = f"key {kid!r}" if kid else "a key without a kid, and it has several"
            raise _invalid(f"the bearer token is signed with {what} the issuer does not publish")
        return self._prepare(kid, jwk, algorithm)

    async def _refresh(self, kid: str) -> None:
        now = time.monotonic()
        if self._loaded_at is not None and kid in self._jwks and now - self._loaded_at < self.max_age_s:
            return  # fetched by a request this one waited on
        if self._tried_at is not None and now - self._tried_at < self.refetch_after_s:
            return
        self._tried_at = now
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True) as client:
                answer = await client.get(self.jwks_url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            keys = _usable_keys(answer.json().get("keys"))
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.warning("OIDC signing keys not fetched", url=self.jwks_url, error=self._last_error)
            return
        self._jwks = keys
        self._prepared.clear()
        self._loaded_at = now
        self._last_error = ""
        log.info("OIDC signing keys fetched", url=self.jwks_url, kids=sorted(keys))

    def _prepare(self, kid: str, jwk: dict[str, Any], algorithm: str) -> jwt.PyJWK:
        prepared = self._prepared.get((kid, algorithm))
        if prepared is not None:
            return prepared
        declared = jwk.get("alg")
        if (declared and declared != algorithm) or jwk.get("kty") != _key_type(algorithm):
            raise _invalid(
                f"the bearer token says {algorithm}, which the issuer's key {kid!r}"
                f" ({jwk.get('kty')}, {declared or 'no alg'}) is not for"
            )
        try:
            prepared = jwt.PyJWK(jwk, algorithm)
        except jwt.PyJWTError as exc:
            raise _invalid(f"the issuer's key {kid!r} cannot be used: {exc}") from None
        self._prepared[(kid, algorithm)] = prepared
        return prepared


def _usable_keys(keys: Iterable[Any] | None) -> dict[str, dict[str, Any]]:
    """The signing keys of a JWKS by kid: symmetric (``oct``) and encryption-only keys are left out."""
    if not isinstance(keys, list):
        raise ValueError("the JWKS document has no 'keys' list")
    usable: dict[str, dict[str, Any]] = {}
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in _KEY_TYPES.values() or key.get("use") == "enc":
            continue
        usable[str(key.get("kid") or "")] = key
    return usable
