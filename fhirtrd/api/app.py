"""The composition root of the HTTP door: `create_app(config)` wires settings, mappings and routes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import requests
from flask import Flask, Response, current_app, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

import fhirtrd
from fhirtrd.api.auth import Authenticator, JwtVerifier
from fhirtrd.api.config import ServiceSettings, load_settings
from fhirtrd.api.errors import HttpError, cds_error, operation_outcome
from fhirtrd.api.prefetch import prefetch_templates
from fhirtrd.fhir.outbound import OutputSettings
from fhirtrd.terminology import Terminology, load_terminology

log = logging.getLogger("fhirtrd.api")

FHIR_JSON = "application/fhir+json"
CDS_PREFIX = "/cds-services"
_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


@dataclass
class Service:
    """What every request handler needs, built once at start-up (app.extensions["fhirtrd"])."""

    settings: ServiceSettings
    terminology: Terminology
    session: requests.Session
    auth: Authenticator
    templates: dict[str, str]
    output_settings: OutputSettings

    def as_of(self) -> date:
        return self.settings.as_of or date.today()


def service() -> Service:
    """The Service of the current app."""
    return current_app.extensions["fhirtrd"]  # type: ignore[no-any-return]


def json_response(body: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=mimetype)


def create_app(
    config: Mapping[str, Any] | ServiceSettings | None = None,
    *,
    session: requests.Session | None = None,
) -> Flask:
    """The Flask app. `config` None reads FHIRTRD_CONFIG and FHIRTRD_* variables (see config.py)."""
    settings = config if isinstance(config, ServiceSettings) else load_settings(config)
    terminology = load_terminology(settings.mappings_dirs)
    http = session or requests.Session()
    app = Flask("fhirtrd.api")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="fhirtrd",
        API_VERSION=fhirtrd.__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_REDOC_PATH="/docs" if settings.docs else None,
        OPENAPI_REDOC_URL="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Treatment-resistant depression and social anxiety disorder "
                "from FHIR R4 data: REST operations and CDS Hooks 2.0 services."
            },
            "servers": [{"url": settings.public_url}],
        },
    )
    logging.getLogger("fhirtrd").setLevel(settings.log_level.upper())
    app.extensions["fhirtrd"] = Service(
        settings=settings,
        terminology=terminology,
        session=http,
        auth=Authenticator(settings, JwtVerifier(settings, http)),
        templates=prefetch_templates(terminology),
        output_settings=OutputSettings(canonical_base=settings.canonical_base),
    )
    api = Api(app)
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "API key or JWT"}
    )
    from fhirtrd.api.cds import blp as cds_blp
    from fhirtrd.api.routes import blp as rest_blp

    api.register_blueprint(rest_blp)
    api.register_blueprint(cds_blp)
    from fhirtrd.smart.views import init_smart  # the SMART app (docs/smart-app.md), when configured

    init_smart(app, settings)
    _register_error_handlers(app)
    log.info(
        "fhirtrd service ready: %d drugs, %d observation codes; cds_auth=%s rest_auth=%s",
        len(terminology.rules.drugs), len(terminology.observations),
        settings.cds_auth, settings.rest_auth,
    )
    return app


def _error(status: int, code: str, message: str, expression: str | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    if request.path.startswith(CDS_PREFIX):
        response = json_response(cds_error(code, message), status)
    else:
        outcome = operation_outcome(message, code=code, expression=expression)
        response = json_response(outcome, status, FHIR_JSON)
    response.headers.update(headers or {})
    return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HttpError)
    def _http_error(exc: HttpError) -> Response:
        if exc.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc.message)
        return _error(exc.status, exc.code, exc.message, exc.expression, exc.headers)

    @app.errorhandler(HTTPException)
    def _werkzeug_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body is over the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
        headers = dict(exc.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return _error(status, _HTTP_CODES.get(status, "processing"), message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "exception", "internal error; the service log has the details")
