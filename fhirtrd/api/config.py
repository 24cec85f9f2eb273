"""Service settings: defaults, a YAML/JSON file named by FHIRTRD_CONFIG, and FHIRTRD_* variables.

Precedence (last wins): defaults → the file named by `FHIRTRD_CONFIG` → environment variables
`FHIRTRD_<SETTING>` (upper case, e.g. `FHIRTRD_PUBLIC_URL`; lists comma-separated or JSON; objects
JSON; booleans true/false/1/0). `create_app(mapping)` uses defaults + the mapping only, so tests
never see the environment. Unknown settings and wrong types are a `ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from fhirtrd.api.errors import ConfigError

ENV_PREFIX = "FHIRTRD_"
CONFIG_FILE_ENV = "FHIRTRD_CONFIG"

# Asymmetric JWS algorithms only (RFC 7518 §3.1); HS* and "none" are never accepted.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """A CDS client (EHR) or token issuer we trust, and where its public keys come from.

    `jwks` is an inline JWK Set; `jwks_url` a configured JWK Set URL; `jku` the JWK Set URLs this
    issuer may name in a token's `jku` header (exact match). `subjects`: allowed `sub` values
    (empty = any).
    """

    issuer: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    jku: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Every setting of the HTTP service; see docs/service.md for the meaning of each."""

    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 64
    # auth
    cds_auth: bool = False
    rest_auth: bool = False
    api_keys: tuple[str, ...] = ()
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    jwt_algorithms: tuple[str, ...] = ("RS384", "ES384", "RS256", "ES256", "PS384")
    jwt_leeway_seconds: int = 30
    jwt_max_age_seconds: int = 600
    jti_cache_size: int = 100_000
    jti_cache_path: str | None = None  # SQLite file shared by the workers of one host
    jwks_cache_seconds: int = 300
    # FHIR servers
    fhir_base_url: str | None = None
    fhir_bearer_token: str | None = None
    fhir_server_allowlist: tuple[str, ...] = ()
    fhir_timeout_seconds: float = 10.0
    fhir_max_pages: int = 50
    # content
    mappings_dirs: tuple[str, ...] = ()
    canonical_base: str = "http://fhirtrd.org/fhir"
    system_actions: bool = False
    source_label: str = "fhirtrd treatment-resistance assessment"
    source_url: str | None = None
    as_of: date | None = None  # fixed assessment date (tests, demos); None = today
    log_level: str = "INFO"
    feedback_path: str = "fhirtrd-feedback.sqlite"  # append-only SQLite file of CDS feedback
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call (CORS); none by default
    docs: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    smart: dict[str, Any] = field(default_factory=dict)  # the SMART app (fhirtrd.smart.settings)


_FIELDS = {f.name: f for f in dataclasses.fields(ServiceSettings)}


def load_settings(
    mapping: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> ServiceSettings:
    """Settings from a mapping (no environment) or, when `mapping` is None, from file + environment."""
    raw: dict[str, Any] = {}
    if mapping is None:
        env = os.environ if environ is None else environ
        path = env.get(CONFIG_FILE_ENV)
        if path:
            raw.update(_read_file(Path(path)))
        for name, value in env.items():
            if name.startswith(ENV_PREFIX) and name != CONFIG_FILE_ENV:
                key = name[len(ENV_PREFIX) :].lower()
                if key in _FIELDS:
                    raw[key] = _from_env(key, value)
    else:
        raw.update(mapping)
    return _build(raw)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(CONFIG_FILE_ENV, f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(CONFIG_FILE_ENV, f"{path} is not valid YAML/JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(CONFIG_FILE_ENV, f"{path} must hold a mapping of settings")
    return data


def _from_env(key: str, value: str) -> Any:
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(ENV_PREFIX + key.upper(), f"invalid JSON: {exc}") from exc
    kind = _kind(key)
    if kind == "tuple":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _kind(key: str) -> str:
    annotation = str(_FIELDS[key].type)
    if annotation.startswith("tuple"):
        return "tuple"
    return annotation


def _build(raw: Mapping[str, Any]) -> ServiceSettings:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise ConfigError(key, "unknown setting")
        values[key] = _coerce(key, value)
    settings = ServiceSettings(**values)
    _check(settings)
    return settings


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(key: str, value: Any) -> Any:
    kind = _kind(key)
    try:
        if key == "trusted_issuers":
            return tuple(_issuer(i, item) for i, item in enumerate(_as_list(value)))
        if kind == "tuple":
            return tuple(str(v) for v in _as_list(value))
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(f"expected true or false, got {value!r}")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "date | None":
            if value is None or value == "":
                return None
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if kind == "str | None":
            return None if value is None or value == "" else str(value)
        if kind == "dict[str, Any]":
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return dict(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, str(exc)) from exc


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError("expected a list")


def _issuer(index: int, item: Any) -> TrustedIssuer:
    if not isinstance(item, dict) or not isinstance(item.get("issuer"), str):
        raise ValueError(f"entry {index} must be a mapping with an 'issuer' string")
    unknown = set(item) - {"issuer", "jwks", "jwks_url", "jku", "subjects"}
    if unknown:
        raise ValueError(f"entry {index}: unknown keys {sorted(unknown)}")
    jwks = item.get("jwks")
    if jwks is not None and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
        raise ValueError(f"entry {index}: jwks must be a JWK Set with a 'keys' list")
    return TrustedIssuer(
        issuer=item["issuer"],
        jwks=jwks,
        jwks_url=item.get("jwks_url"),
        jku=tuple(str(u) for u in _as_list(item.get("jku", []))),
        subjects=tuple(str(s) for s in _as_list(item.get("subjects", []))),
    )


def _check(s: ServiceSettings) -> None:
    bad = [a for a in s.jwt_algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if bad:
        raise ConfigError("jwt_algorithms", f"only asymmetric algorithms are allowed, not {bad}")
    if s.max_body_bytes <= 0:
        raise ConfigError("max_body_bytes", "must be positive")
    if not 2 <= s.max_json_depth <= 512:
        raise ConfigError("max_json_depth", "must be between 2 and 512")
    if s.jti_cache_size <= 0:
        raise ConfigError("jti_cache_size", "must be positive")
    for issuer in s.trusted_issuers:
        if issuer.jwks is None and issuer.jwks_url is None and not issuer.jku:
            raise ConfigError(
                "trusted_issuers", f"{issuer.issuer}: give jwks, jwks_url or jku (key source)"
            )
    if s.rest_auth and not (s.api_keys or s.trusted_issuers):
        raise ConfigError("rest_auth", "on, but neither api_keys nor trusted_issuers is set")
    if s.cds_auth and not s.trusted_issuers:
        raise ConfigError("cds_auth", "on, but no trusted_issuers are configured")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("log_level", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if s.as_of is not None and not date(1900, 1, 1) <= s.as_of <= date(2199, 12, 31):
        raise ConfigError("as_of", "must be between 1900-01-01 and 2199-12-31")
    if not s.public_url.startswith(("http://", "https://")):
        raise ConfigError("public_url", "must be an absolute http(s) URL")


def replay_cache_is_shared(s: ServiceSettings) -> bool:
    """True when JWT replays are caught across processes (or no JWT is ever accepted)."""
    uses_jwt = s.cds_auth or (s.rest_auth and bool(s.trusted_issuers))
    return not uses_jwt or s.jti_cache_path is not None


def check_workers(s: ServiceSettings, workers: int) -> None:
    """Refuse more than one worker process when each would keep its own JWT replay cache."""
    if workers > 1 and not replay_cache_is_shared(s):
        raise ConfigError(
            "jti_cache_path",
            f"{workers} worker processes accept JWTs but the replay cache is per process: set "
            "jti_cache_path (an SQLite file on local disk shared by the workers) or run one worker",
        )
