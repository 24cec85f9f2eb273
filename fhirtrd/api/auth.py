"""Who may call: JWT verification for CDS clients (CDS Hooks 2.0 "Trusting CDS Clients") and
bearer API keys or JWTs for the REST endpoints.

A CDS client signs a short-lived JWT with its private key. We accept it only when: the algorithm is
asymmetric and configured; `iss` is a trusted issuer; the key comes from that issuer's configured
JWK Set or from a `jku` URL on that issuer's allowlist (never from an arbitrary URL); the signature
verifies; `aud` is this service's URL (the endpoint called, or the service base); `exp` and `iat`
are present and current; `jti` has not been seen before (bounded replay cache until `exp`).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from fhirtrd.api.config import ASYMMETRIC_ALGORITHMS, ServiceSettings, TrustedIssuer
from fhirtrd.api.errors import Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fhirtrd"'}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the request: `kind` is "api-key", "jwt" or "anonymous" (auth switched off)."""

    kind: str
    issuer: str | None = None
    subject: str | None = None
    tenant: str | None = None


ANONYMOUS = Caller("anonymous")


class ReplayCache:
    """`jti` values seen, each kept until its token expires; bounded, oldest dropped first."""

    def __init__(self, max_size: int, clock: Callable[[], float] = time.time) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_size
        self._clock = clock
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, expires: float) -> bool:
        """Record (issuer, jti); False when it was already recorded and has not expired."""
        now = self._clock()
        key = (issuer, jti)
        with self._lock:
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until >= now:
                return False
            while self._seen:
                oldest_key, oldest_until = next(iter(self._seen.items()))
                if oldest_until < now or len(self._seen) >= self._max:
                    del self._seen[oldest_key]
                else:
                    break
            self._seen[key] = expires
            return True


class SqliteReplayCache:
    """`jti` values seen, in an SQLite file shared by every gunicorn worker of one host.

    Each worker process holds its own in-memory state, so an in-memory cache would let a token be
    replayed against another worker; one file (on local disk, never a network share) closes that.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE IF NOT EXISTS seen (iss TEXT NOT NULL, jti TEXT NOT NULL,"
                         " until REAL NOT NULL, PRIMARY KEY (iss, jti))")
            conn.execute("CREATE INDEX IF NOT EXISTS seen_until ON seen (until)")
            self._local.conn = conn
        return conn

    def first_use(self, issuer: str, jti: str, expires: float) -> bool:
        conn = self._connection()
        conn.execute("DELETE FROM seen WHERE until < ?", (self._clock(),))
        try:
            conn.execute("INSERT INTO seen (iss, jti, until) VALUES (?, ?, ?)",
                         (issuer, jti, expires))
        except sqlite3.IntegrityError:
            return False
        return True


class JwksCache:
    """JWK Sets fetched from configured/allowlisted URLs, kept `ttl` seconds."""

    def __init__(
        self, session: requests.Session, ttl: float, timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._sets: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, refresh: bool = False) -> jwt.PyJWKSet:
        now = self._clock()
        with self._lock:
            cached = self._sets.get(url)
        if cached and not refresh and cached[0] > now:
            return cached[1]
        try:
            response = self._session.get(url, timeout=self._timeout)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json())
        except (requests.RequestException, ValueError, jwt.PyJWKSetError) as exc:
            raise Unauthorized(
                f"cannot load the JWK Set at {url}: {exc}", headers=_CHALLENGE
            ) from exc
        with self._lock:
            self._sets[url] = (now + self._ttl, keys)
        return keys


class JwtVerifier:
    """Verifies bearer JWTs against the trusted issuers of the settings."""

    def __init__(
        self,
        settings: ServiceSettings,
        session: requests.Session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {i.issuer: i for i in settings.trusted_issuers}
        self._algorithms = [a for a in settings.jwt_algorithms if a in ASYMMETRIC_ALGORITHMS]
        self._leeway = settings.jwt_leeway_seconds
        self._max_age = settings.jwt_max_age_seconds
        self._clock = clock
        self._replay: ReplayCache | SqliteReplayCache = (
            SqliteReplayCache(settings.jti_cache_path, clock) if settings.jti_cache_path
            else ReplayCache(settings.jti_cache_size, clock)
        )
        self._jwks = JwksCache(
            session, settings.jwks_cache_seconds, settings.fhir_timeout_seconds, clock
        )
        self._inline = {
            i.issuer: jwt.PyJWKSet.from_dict(i.jwks) for i in settings.trusted_issuers if i.jwks
        }

    def verify(self, token: str, audiences: Sequence[str]) -> Caller:
        """The caller of a valid token; every failure, whatever its cause, is `Unauthorized`."""
        try:
            return self._verify(token, audiences)
        except Unauthorized:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError,
                jwt.PyJWTError) as exc:
            # e.g. PyJWT's TypeError when an ES* header meets an RSA key: never a 500.
            raise Unauthorized(f"JWT rejected: {exc.__class__.__name__}", headers=_CHALLENGE) from exc

    def _verify(self, token: str, audiences: Sequence[str]) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed JWT: {exc}", headers=_CHALLENGE) from exc
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise Unauthorized(
                f"JWT algorithm {alg!r} is not accepted (allowed: {', '.join(self._algorithms)})",
                headers=_CHALLENGE,
            )
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized(f"JWT issuer {iss!r} is not trusted", headers=_CHALLENGE)
        key = self._key(issuer, header)
        if not _key_fits(key, alg):
            raise Unauthorized(f"JWT algorithm {alg} does not fit the issuer's {key.key_type} key",
                               headers=_CHALLENGE)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,  # the raw public key: the header's (allowlisted) alg is verified
                algorithms=[alg],
                audience=list(audiences),
                issuer=issuer.issuer,
                leeway=self._leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("JWT has expired", headers=_CHALLENGE) from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized(
                f"JWT audience is not this service ({audiences[0]})", headers=_CHALLENGE
            ) from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"JWT rejected: {exc}", headers=_CHALLENGE) from exc
        now = self._clock()
        iat = float(claims["iat"])
        if now - iat > self._max_age + self._leeway:
            raise Unauthorized(
                f"JWT was issued {int(now - iat)} s ago, over the limit of {self._max_age} s",
                headers=_CHALLENGE,
            )
        sub = claims.get("sub")
        if issuer.subjects and sub not in issuer.subjects:
            raise Unauthorized(f"JWT subject {sub!r} is not allowed", headers=_CHALLENGE)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("JWT jti must be a non-empty string", headers=_CHALLENGE)
        # Remember the jti while the token could still be accepted: until exp, and never past
        # iat + max age (an older token is refused above whatever its exp), plus the leeway.
        until = min(float(claims["exp"]), iat + self._max_age) + self._leeway
        if not self._replay.first_use(issuer.issuer, jti, until):
            raise Unauthorized("JWT jti was already used (replay)", headers=_CHALLENGE)
        tenant = claims.get("tenant")
        return Caller(
            "jwt", issuer.issuer, sub if isinstance(sub, str) else None,
            tenant if isinstance(tenant, str) else None,
        )

    def _key(self, issuer: TrustedIssuer, header: dict[str, Any]) -> jwt.PyJWK:
        jku = header.get("jku")
        kid = header.get("kid")
        if jku is not None:
            if jku not in issuer.jku:
                raise Unauthorized(
                    f"JWT jku {jku!r} is not on the allowlist of issuer {issuer.issuer}",
                    headers=_CHALLENGE,
                )
            keys = self._jwks.get(jku)
            found = _pick(keys, kid)
            if found is None:
                found = _pick(self._jwks.get(jku, refresh=True), kid)
        elif issuer.issuer in self._inline:
            found = _pick(self._inline[issuer.issuer], kid)
        elif issuer.jwks_url:
            found = _pick(self._jwks.get(issuer.jwks_url), kid)
            if found is None:
                found = _pick(self._jwks.get(issuer.jwks_url, refresh=True), kid)
        else:
            raise Unauthorized(
                f"issuer {issuer.issuer} publishes its keys by jku; the JWT names none",
                headers=_CHALLENGE,
            )
        if found is None:
            raise Unauthorized(f"no key {kid!r} in the issuer's JWK Set", headers=_CHALLENGE)
        return found


_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def _key_fits(key: jwt.PyJWK, alg: str) -> bool:
    """The JWK's type is the one the header's algorithm needs (RS*/PS* RSA, ES* EC, EdDSA OKP)."""
    return _KEY_TYPES.get(alg[:2]) == key.key_type


def _pick(keys: jwt.PyJWKSet, kid: Any) -> Any:
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    for key in keys.keys:
        if key.key_id == kid:
            return key
    return None


class ApiKeys:
    """Configured API keys, compared by SHA-256 digest in constant time."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def __contains__(self, token: object) -> bool:
        if not isinstance(token, str):
            return False
        digest = hashlib.sha256(token.encode()).digest()
        return any(hmac.compare_digest(digest, d) for d in self._digests)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header, or 401."""
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer header", headers=_CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must use the Bearer scheme", headers=_CHALLENGE)
    return token.strip()


class Authenticator:
    """The door's auth policy: JWT for CDS clients, API key or JWT for REST; each can be off."""

    def __init__(self, settings: ServiceSettings, verifier: JwtVerifier) -> None:
        self._settings = settings
        self._verifier = verifier
        self._keys = ApiKeys(settings.api_keys)

    def _audiences(self, path: str) -> list[str]:
        base = self._settings.public_url.rstrip("/")
        return [base + path, base, base + "/"]

    def cds_client(self, authorization: str | None, path: str) -> Caller:
        if not self._settings.cds_auth:
            return ANONYMOUS
        return self._verifier.verify(bearer_token(authorization), self._audiences(path))

    def rest_client(self, authorization: str | None, path: str) -> Caller:
        if not self._settings.rest_auth:
            return ANONYMOUS
        token = bearer_token(authorization)
        if token in self._keys:
            return Caller("api-key")
        if token.count(".") == 2 and self._settings.trusted_issuers:
            return self._verifier.verify(token, self._audiences(path))
        raise Unauthorized("bearer token is not a valid API key or JWT", headers=_CHALLENGE)
