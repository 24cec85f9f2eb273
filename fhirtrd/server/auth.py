"""Authentication for the FHIR server client: none, static bearer, SMART Backend Services, client secret.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the client
signs a short-lived JWT assertion (RS384 or ES384; iss = sub = client_id, aud = token URL, exp at
most 5 minutes ahead, unique jti) and trades it at the token endpoint for an access token
(grant_type=client_credentials, client_assertion_type=...jwt-bearer). The token is cached and
fetched again shortly before ``expires_in`` runs out; after a 401 the client drops it and retries
once with a fresh one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhirtrd.server.errors import (
    AuthError,
    ServerConfigError,
    ServerTimeout,
    ServerUnreachable,
    TemporaryServerError,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPE = "system/*.read system/*.write"
ASSERTION_LIFETIME_SECONDS = 300  # SMART: exp no more than five minutes in the future


class Auth(Protocol):
    """What the client needs from an authentication scheme."""

    def headers(self, session: requests.Session, timeout: float | tuple[float, float]) -> dict[str, str]:
        """Headers to add to a request (may fetch a token)."""
        ...

    def renew(self) -> bool:
        """Forget any cached credential after a 401; True if a retry can succeed with a new one."""
        ...


class NoAuth:
    """No Authorization header."""

    def headers(self, session: requests.Session, timeout: float | tuple[float, float]) -> dict[str, str]:
        return {}

    def renew(self) -> bool:
        return False


@dataclass(frozen=True)
class BearerToken:
    """A static bearer token given by the operator."""

    token: str

    def headers(self, session: requests.Session, timeout: float | tuple[float, float]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def renew(self) -> bool:
        return False


@dataclass(frozen=True)
class SigningKey:
    """A private key for client assertions, with its JWT algorithm and key id."""

    key: Any  # cryptography private key object
    alg: Literal["RS384", "ES384"]
    kid: str


def _thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) used as kid when none is given."""
    import hashlib

    members = ("e", "kty", "n") if public_jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: public_jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(key: SigningKey) -> dict[str, Any]:
    """The public JWK (with kid and alg) to register for this key at the authorisation server."""
    algo: Any = jwt.algorithms.RSAAlgorithm if key.alg == "RS384" else jwt.algorithms.ECAlgorithm
    jwk: dict[str, Any] = json.loads(algo.to_jwk(key.key.public_key()))
    jwk.update({"kid": key.kid, "alg": key.alg, "use": "sig"})
    return jwk


def _alg_for(key: Any, path: Path) -> Literal["RS384", "ES384"]:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name != "secp384r1":
            raise ServerConfigError(
                f"{path}: ES384 needs an EC key on curve P-384 (secp384r1), this one is on {key.curve.name}"
            )
        return "ES384"
    raise ServerConfigError(f"{path}: only RSA (RS384) and EC P-384 (ES384) private keys are supported")


def load_signing_key(path: Path, kid: str | None = None) -> SigningKey:
    """Read a private key from a PEM file or a JWK file (a JWK or a JWKS holding one private key)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ServerConfigError(f"cannot read the private key file {path}: {exc.strerror}") from exc
    key: Any
    if raw.lstrip().startswith(b"{"):
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ServerConfigError(f"{path}: not valid JSON ({exc})") from exc
        keys: list[Any] = doc.get("keys") or [] if isinstance(doc, dict) and "keys" in doc else [doc]
        private = [k for k in keys if isinstance(k, dict) and "d" in k]
        if len(private) != 1:
            raise ServerConfigError(f"{path}: expected exactly one private JWK (with 'd'), found {len(private)}")
        jwk_doc = private[0]
        try:
            key = jwt.PyJWK.from_dict(jwk_doc).key
        except jwt.PyJWTError as exc:
            raise ServerConfigError(f"{path}: not a usable private JWK ({exc})") from exc
        kid = kid or jwk_doc.get("kid")
    else:
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise ServerConfigError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    alg = _alg_for(key, path)
    provisional = SigningKey(key=key, alg=alg, kid=kid or "")
    if not kid:
        provisional = SigningKey(key=key, alg=alg, kid=_thumbprint(public_jwk(provisional)))
    return provisional


def _post_token(
    session: requests.Session,
    token_url: str,
    form: dict[str, str],
    timeout: float | tuple[float, float],
    basic: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """POST to the token endpoint; map failures onto the error tree."""
    try:
        response = session.post(
            token_url,
            data=form,
            auth=basic,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except requests.Timeout as exc:
        raise ServerTimeout(f"token endpoint timed out: {exc}", method="POST", url=token_url) from exc
    except requests.ConnectionError as exc:
        raise ServerUnreachable(f"token endpoint unreachable: {exc}", method="POST", url=token_url) from exc
    if response.status_code in (429, 500, 502, 503, 504):
        raise TemporaryServerError(
            method="POST", url=token_url, status=response.status_code, outcome=None,
            body_excerpt=response.text[:300],
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        error = body.get("error", "") if isinstance(body, dict) else ""
        desc = body.get("error_description", "") if isinstance(body, dict) else ""
        detail = f"{error}: {desc}".strip(": ") or response.text[:300]
        raise AuthError(
            f"token endpoint {token_url} refused the request (HTTP {response.status_code}): {detail}",
            status=response.status_code,
            url=token_url,
        )
    return body


class _CachedTokenAuth(ABC):
    """Shared token cache: fetch on first use, renew before expiry or after a 401."""

    #: renew when less than this share of the token's lifetime is left (capped by RENEW_MARGIN_MAX)
    RENEW_SHARE = 0.1
    RENEW_MARGIN_MAX = 60.0

    def __init__(self, token_url: str, scope: str, clock: Callable[[], float] = time.time,
                 renew_margin: float | None = None) -> None:
        self.token_url = token_url
        self.scope = scope
        self._clock = clock
        self.renew_margin = renew_margin  # seconds before expiry to renew; None: the shares above
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.tokens_fetched = 0

    @abstractmethod
    def _request_token(
        self, session: requests.Session, timeout: float | tuple[float, float]
    ) -> dict[str, Any]:
        """POST to the token endpoint; the token response as JSON."""

    def headers(self, session: requests.Session, timeout: float | tuple[float, float]) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                issued_at = self._clock()
                body = self._request_token(session, timeout)
                lifetime = float(body.get("expires_in") or 300)
                margin = (min(self.RENEW_MARGIN_MAX, lifetime * self.RENEW_SHARE)
                          if self.renew_margin is None else self.renew_margin)
                self._token = str(body["access_token"])
                self._renew_at = issued_at + lifetime - margin
                self.tokens_fetched += 1
            return {"Authorization": f"Bearer {self._token}"}

    def renew(self) -> bool:
        with self._lock:
            self._token = None
        return True


class SmartBackendAuth(_CachedTokenAuth):
    """SMART Backend Services: client_credentials with a private_key_jwt assertion."""

    def __init__(
        self,
        client_id: str,
        key: SigningKey,
        token_url: str,
        scope: str = DEFAULT_SCOPE,
        clock: Callable[[], float] = time.time,
        renew_margin: float | None = None,
    ) -> None:
        super().__init__(token_url, scope, clock, renew_margin)
        self.client_id = client_id
        self.key = key

    def assertion(self) -> str:
        """A fresh signed client assertion (unique jti, 5-minute expiry)."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self.key.key, algorithm=self.key.alg, headers={"kid": self.key.kid, "typ": "JWT"}
        )

    def _request_token(
        self, session: requests.Session, timeout: float | tuple[float, float]
    ) -> dict[str, Any]:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        return _post_token(session, self.token_url, form, timeout)


class ClientSecretAuth(_CachedTokenAuth):
    """OAuth2 client_credentials with a shared secret (client_secret_basic or client_secret_post)."""

    def __init__(
        self,
        client_id: str,
        secret: str,
        token_url: str,
        method: Literal["basic", "post"] = "basic",
        scope: str = DEFAULT_SCOPE,
        clock: Callable[[], float] = time.time,
        renew_margin: float | None = None,
    ) -> None:
        super().__init__(token_url, scope, clock, renew_margin)
        self.client_id = client_id
        self._secret = secret
        self.method = method

    def _request_token(
        self, session: requests.Session, timeout: float | tuple[float, float]
    ) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "scope": self.scope}
        if self.method == "post":
            form.update({"client_id": self.client_id, "client_secret": self._secret})
            return _post_token(session, self.token_url, form, timeout)
        return _post_token(session, self.token_url, form, timeout, basic=(self.client_id, self._secret))


def discover_token_url(
    session: requests.Session, base_url: str, timeout: float | tuple[float, float],
    capability: Mapping[str, Any] | None = None,
) -> str:
    """The token endpoint from .well-known/smart-configuration, else from the CapabilityStatement."""
    well_known = f"{base_url.rstrip('/')}/.well-known/smart-configuration"
    try:
        response = session.get(well_known, headers={"Accept": "application/json"}, timeout=timeout)
        if response.status_code == 200:
            doc = response.json()
            if isinstance(doc, dict) and isinstance(doc.get("token_endpoint"), str):
                return str(doc["token_endpoint"])
    except (requests.RequestException, ValueError):
        pass  # fall back to the CapabilityStatement below
    for rest in (capability or {}).get("rest") or []:
        for ext in (rest.get("security") or {}).get("extension") or []:
            if ext.get("url", "").endswith("/oauth-uris"):
                for sub in ext.get("extension") or []:
                    if sub.get("url") == "token" and sub.get("valueUri"):
                        return str(sub["valueUri"])
    raise ServerConfigError(
        f"no token endpoint found at {well_known} or in the CapabilityStatement; pass --token-url"
    )
