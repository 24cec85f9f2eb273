"""What the blueprints share: the per-app Service, JSON responses, ids and the assessment date."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import requests
from flask import Response, current_app

from fhirtrd.api.auth import Authenticator
from fhirtrd.api.config import ServiceSettings
from fhirtrd.api.errors import BadRequest
from fhirtrd.api.feedback import FeedbackStore
from fhirtrd.fhir.outbound import OutputSettings, build_transaction, merge_transactions
from fhirtrd.terminology import Terminology

FHIR_JSON = "application/fhir+json"
CDS_PREFIX = "/cds-services"
# FHIR R4 id (datatypes.html#id); ids made only of dots are refused too: `Patient/..` is a path.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# The assessment dates the service accepts: far enough from date.min/max that every interval the
# classifier computes (trial windows, look-backs of years) stays a valid date.
AS_OF_MIN = date(1900, 1, 1)
AS_OF_MAX = date(2199, 12, 31)
# Exactly the valid calendar dates YYYY-MM-DD of that range (leap days included), so the OpenAPI
# document can say precisely which as_of values are accepted.
AS_OF_PATTERN = (
    r"^(?:(?:19|20|21)\d\d-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-"
    r"(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))|(?:(?:19|20|21)(?:0[48]|[2468][048]|"
    r"[13579][26])|2000)-02-29)$"
)


@dataclass
class Service:
    """What every request handler needs, built once at start-up (app.extensions["fhirtrd"])."""

    settings: ServiceSettings
    terminology: Terminology
    session: requests.Session
    auth: Authenticator
    templates: dict[str, str]
    output_settings: OutputSettings
    feedback: FeedbackStore

    def as_of(self) -> date:
        return self.settings.as_of or date.today()


def service() -> Service:
    """The Service of the current app."""
    return current_app.extensions["fhirtrd"]  # type: ignore[no-any-return]


def json_response(body: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=mimetype)


def is_fhir_id(value: object) -> bool:
    """A FHIR id that is safe in a URL path (not `.` or `..`)."""
    return isinstance(value, str) and bool(_FHIR_ID.fullmatch(value)) and value.strip(".") != ""


def parse_as_of(raw: str, expression: str = "as_of") -> date:
    """An assessment date YYYY-MM-DD within the supported range, or a 400 naming `expression`."""
    if re.fullmatch(r"\d{4}-\d\d-\d\d", raw) is None:
        raise BadRequest(f"{expression} must be a date YYYY-MM-DD, not {raw!r}", expression=expression)
    if re.fullmatch(AS_OF_PATTERN, raw) is None:
        raise BadRequest(f"{expression} must be a calendar date between {AS_OF_MIN} and {AS_OF_MAX}, "
                         f"not {raw}", expression=expression)
    return date.fromisoformat(raw)


def transaction_of(svc: Service, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One transaction Bundle holding the write-back of every patient's result."""
    bundles = [build_transaction(r, svc.output_settings) for r in results]
    return bundles[0] if len(bundles) == 1 else merge_transactions(bundles)
