"""SMART App Launch 2.x client side: discovery, PKCE S256, the authorize URL and the code exchange."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from fhirtrd.smart.settings import Issuer, SmartSettings


class LaunchError(Exception):
    """A launch that cannot go on; `message` is shown to the user (it never holds a token)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorize: str
    token: str


def pkce_pair() -> tuple[str, str]:
    """A code verifier (43+ characters, RFC 7636 §4.1) and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def endpoints(issuer: Issuer, session: requests.Session, timeout: float) -> Endpoints:
    """The issuer's authorize and token endpoints: from configuration, else `.well-known/smart-configuration`."""
    if issuer.authorize_url and issuer.token_url:
        return Endpoints(issuer.authorize_url, issuer.token_url)
    url = issuer.iss + "/.well-known/smart-configuration"
    try:
        response = session.get(url, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise LaunchError(f"the FHIR server's SMART configuration could not be read ({exc.__class__.__name__})",
                          502) from exc
    if response.status_code != 200:
        raise LaunchError(f"{url} answered HTTP {response.status_code}; configure the endpoints of this server", 502)
    try:
        doc: Any = response.json()
    except ValueError:
        doc = None
    auth = doc.get("authorization_endpoint") if isinstance(doc, dict) else None
    token = doc.get("token_endpoint") if isinstance(doc, dict) else None
    if not (isinstance(auth, str) and isinstance(token, str) and _https_or_loopback(auth) and _https_or_loopback(token)):
        raise LaunchError(f"{url} names no usable authorization_endpoint and token_endpoint (https required)", 502)
    methods = doc.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise LaunchError(f"{url}: the server does not support PKCE S256", 502)
    return Endpoints(auth, token)


def authorize_url(ep: Endpoints, settings: SmartSettings, issuer: Issuer, *, state: str, challenge: str,
                  launch: str | None) -> str:
    params = {"response_type": "code", "client_id": settings.client_id, "redirect_uri": settings.redirect_uri,
              "scope": settings.scope(issuer, launch is not None), "state": state, "aud": issuer.iss,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    if launch is not None:
        params["launch"] = launch
    return ep.authorize + ("&" if "?" in ep.authorize else "?") + urlencode(params)


def exchange_code(token_url: str, settings: SmartSettings, code: str, verifier: str,
                  session: requests.Session, timeout: float) -> dict[str, Any]:
    """POST the authorization code with the PKCE verifier; the token response (checked) or a LaunchError."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.redirect_uri,
            "code_verifier": verifier}
    auth = None
    if settings.client_secret:
        auth = (settings.client_id, settings.client_secret)  # client_secret_basic
    else:
        data["client_id"] = settings.client_id
    try:
        response = session.post(token_url, data=data, auth=auth, headers={"Accept": "application/json"},
                                timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise LaunchError(f"the token endpoint could not be reached ({exc.__class__.__name__})", 502) from exc
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise LaunchError(f"the authorization server refused the code (HTTP {response.status_code}"
                          f"{', ' + str(error) if error else ''}); launch the app again", 502)
    if not isinstance(body.get("access_token"), str) or str(body.get("token_type", "")).lower() != "bearer":
        raise LaunchError("the token response has no bearer access_token", 502)
    if not isinstance(body.get("patient"), str) or not body["patient"]:
        raise LaunchError("the token response names no patient: launch the app from a patient's chart, "
                          "or grant the launch/patient scope", 400)
    return body
