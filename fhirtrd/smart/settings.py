"""The SMART app's settings (the `smart` mapping of the service settings), checked at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhirtrd.api.errors import ConfigError

#: SMART App Launch 2.x scopes (v2: .rs = read + search) and their v1 equivalents (.read)
SCOPES = {"v2": "patient/*.rs", "v1": "patient/*.read"}
SAMESITE = ("Lax", "Strict", "None")


@dataclass(frozen=True, slots=True)
class Issuer:
    """A FHIR server the app may launch against. Endpoints given here win over discovery."""

    iss: str
    authorize_url: str | None = None
    token_url: str | None = None
    scope_version: str = "v2"  # v2 | v1
    name: str = ""


@dataclass(frozen=True, slots=True)
class SmartSettings:
    client_id: str
    client_secret: str | None  # set: a confidential client (client_secret_basic); None: public
    redirect_uri: str
    issuers: tuple[Issuer, ...]
    extra_scopes: str = ""
    session_seconds: int = 3600
    cookie_samesite: str = "Lax"
    frame_ancestors: tuple[str, ...] = ("'self'",)
    session_db: str = ":memory:"  # a SQLite file shared by the worker processes of one host

    def issuer(self, iss: str) -> Issuer | None:
        """The allowlisted issuer with exactly this base URL (trailing slash ignored), else None."""
        wanted = iss.strip().rstrip("/")
        return next((i for i in self.issuers if i.iss == wanted), None)

    def scope(self, issuer: Issuer, ehr_launch: bool) -> str:
        parts = ["launch" if ehr_launch else "launch/patient", SCOPES[issuer.scope_version]]
        return " ".join(parts + self.extra_scopes.split())


_KEYS = {"client_id", "client_secret", "redirect_uri", "issuers", "extra_scopes", "session_seconds",
         "cookie_samesite", "frame_ancestors", "session_db"}
_ISSUER_KEYS = {"iss", "authorize_url", "token_url", "scope_version", "name"}


def _url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"smart.{key}", f"must be an absolute http(s) URL, not {value!r}")
    return value.rstrip("/")


def smart_settings(raw: Mapping[str, Any], public_url: str) -> SmartSettings | None:
    """The app's settings from the `smart` mapping; None (app off) when the mapping is empty."""
    if not raw:
        return None
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError("smart", f"unknown keys {sorted(unknown)}")
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigError("smart.client_id", "the client id registered with the EHR is required")
    issuers = []
    for i, item in enumerate(raw.get("issuers") or []):
        if not isinstance(item, Mapping) or set(item) - _ISSUER_KEYS or "iss" not in item:
            raise ConfigError(f"smart.issuers[{i}]", f"a mapping with 'iss' and only {sorted(_ISSUER_KEYS)}")
        if bool(item.get("authorize_url")) != bool(item.get("token_url")):
            raise ConfigError(f"smart.issuers[{i}]", "give both authorize_url and token_url, or neither (discovery)")
        version = item.get("scope_version", "v2")
        if version not in SCOPES:
            raise ConfigError(f"smart.issuers[{i}].scope_version", "must be v2 or v1")
        issuers.append(Issuer(
            iss=_url(f"issuers[{i}].iss", item["iss"]),
            authorize_url=_url(f"issuers[{i}].authorize_url", item["authorize_url"]) if item.get("authorize_url")
            else None,
            token_url=_url(f"issuers[{i}].token_url", item["token_url"]) if item.get("token_url") else None,
            scope_version=version, name=str(item.get("name", ""))))
    if not issuers:
        raise ConfigError("smart.issuers", "list at least one FHIR server (iss) the app may launch against")
    samesite = raw.get("cookie_samesite", "Lax")
    if samesite not in SAMESITE:
        raise ConfigError("smart.cookie_samesite", f"one of {SAMESITE}")
    seconds = raw.get("session_seconds", 3600)
    if not isinstance(seconds, int) or seconds <= 0:
        raise ConfigError("smart.session_seconds", "a positive number of seconds")
    secret = raw.get("client_secret")
    ancestors = raw.get("frame_ancestors", ["'self'"])
    return SmartSettings(
        client_id=client_id, client_secret=str(secret) if secret else None,
        redirect_uri=_url("redirect_uri", raw.get("redirect_uri") or public_url.rstrip("/") + "/smart/callback"),
        issuers=tuple(issuers), extra_scopes=str(raw.get("extra_scopes", "")), session_seconds=seconds,
        cookie_samesite=samesite, session_db=str(raw.get("session_db") or ":memory:"),
        frame_ancestors=tuple(str(a) for a in (ancestors if isinstance(ancestors, list) else [ancestors])))
