"""The composition root of the HTTP door: `create_app(config)` wires settings, mappings and routes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests
from flask import Flask, Response, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

import fhirtrd
from fhirtrd import logs
from fhirtrd.api.auth import Authenticator, JwtVerifier
from fhirtrd.api.cds import blp as cds_blp
from fhirtrd.api.config import ServiceSettings, load_settings
from fhirtrd.api.cors import enable_cors
from fhirtrd.api.errors import HttpError, cds_error, operation_outcome
from fhirtrd.api.feedback import FeedbackStore
from fhirtrd.api.http import CDS_PREFIX, FHIR_JSON, Service, json_response
from fhirtrd.api.prefetch import output_templates, prefetch_templates
from fhirtrd.api.routes import blp as rest_blp
from fhirtrd.fhir.outbound import OutputSettings
from fhirtrd.server.fetch import output_tag_param
from fhirtrd.terminology import load_terminology

log = logging.getLogger("fhirtrd.api")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def create_app(
    config: Mapping[str, Any] | ServiceSettings | None = None,
    *,
    session: requests.Session | None = None,
) -> Flask:
    """The Flask app. `config` None reads FHIRTRD_CONFIG and FHIRTRD_* variables (see config.py)."""
    settings = config if isinstance(config, ServiceSettings) else load_settings(config)
    logs.configure(settings.log_level)
    terminology = load_terminology(settings.mappings_dirs)
    http = session or requests.Session()
    app = Flask("fhirtrd.api")
    app.config.update(
        # One byte over the limit may be read, so that a chunked body (no Content-Length), which
        # werkzeug cuts silently at this length, is seen to be too large (413), not invalid JSON.
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 1,
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
    output_settings = OutputSettings(canonical_base=settings.canonical_base)
    templates = prefetch_templates(terminology)
    # fhirtrd's outputs the EHR already holds: systemActions and card suggestions are planned against
    # them, so what is already recorded as it is is not offered, nor written, a second time
    templates.update(output_templates(output_tag_param(output_settings.codesystem)))
    app.extensions["fhirtrd"] = Service(
        settings=settings,
        terminology=terminology,
        session=http,
        auth=Authenticator(settings, JwtVerifier(settings, http)),
        templates=templates,
        output_settings=output_settings,
        feedback=FeedbackStore(settings.feedback_path),
    )
    api = _Api(app)
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "API key or JWT"}
    )
    api.register_blueprint(rest_blp)
    api.register_blueprint(cds_blp)
    from fhirtrd.smart.views import init_smart  # the SMART app (docs/smart-app.md), when configured

    init_smart(app, settings)
    _document_auth(api, settings)
    _register_error_handlers(app)
    enable_cors(app, settings.cors_origins)
    log.info(
        "fhirtrd service ready",
        extra={"drugs": len(terminology.rules.drugs), "observation_codes": len(terminology.observations),
               "cds_auth": settings.cds_auth, "rest_auth": settings.rest_auth},
    )
    return app


class _Api(Api):  # type: ignore[misc]
    """flask-smorest without its generic `default` error response: each operation lists its own."""

    DEFAULT_ERROR_RESPONSE_NAME = None


def _document_auth(api: Api, settings: ServiceSettings) -> None:
    """The document says an operation needs a bearer token (and may answer 401) only when it does."""
    for path, item in api.spec._paths.items():  # apispec keeps the operations it was given here
        needed = settings.cds_auth if path.startswith(CDS_PREFIX) else settings.rest_auth
        for operation in item.values():
            if not isinstance(operation, dict) or "security" not in operation:
                continue
            if not needed:
                del operation["security"]
                operation.get("responses", {}).pop(401, None)
                operation.get("responses", {}).pop("401", None)


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
            log.warning("request failed", extra={"method": request.method, "path": request.path,
                                                 "status": exc.status})
        return _error(exc.status, exc.code, exc.message, exc.expression, exc.headers)

    @app.errorhandler(HTTPException)
    def _werkzeug_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body is over the limit of {app.config['MAX_CONTENT_LENGTH'] - 1} bytes"
        headers = dict(exc.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return _error(status, _HTTP_CODES.get(status, "processing"), message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unexpected error", extra={"method": request.method, "path": request.path,
                                             "error": exc.__class__.__name__})
        return _error(500, "exception", "internal error; the service log has the details")
