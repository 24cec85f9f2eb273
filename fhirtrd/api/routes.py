"""REST operations: POST /$classify, POST /Patient/{id}/$classify, GET /healthz, GET /readyz."""

from __future__ import annotations

from datetime import date
from typing import Any

import requests
from flask import Response, request
from flask_smorest import Blueprint

from fhirtrd.api.body import FHIR_JSON_TYPES, read_json
from fhirtrd.api.docs import BUNDLE, FHIR_ID, errors
from fhirtrd.api.errors import (
    BadRequest,
    HttpError,
    NotAcceptable,
    NotConfigured,
    NotFound,
    UpstreamError,
)
from fhirtrd.api.fhirfetch import FhirFetcher
from fhirtrd.api.http import (
    AS_OF_MAX,
    AS_OF_MIN,
    AS_OF_PATTERN,
    FHIR_JSON,
    Service,
    is_fhir_id,
    json_response,
    parse_as_of,
    service,
    transaction_of,
)
from fhirtrd.domain.model import PatientResult
from fhirtrd.fhir.reader import ReadReport
from fhirtrd.schemas import ResultsSchema, WarningSchema, dump_result
from fhirtrd.service import classify_bundle, classify_resources

blp = Blueprint("fhir", __name__, description="FHIR operations: classify a Bundle or a patient")

_ENTRY = {"type": "object", "anyOf": [
    {"required": ["resource"], "properties": {"resource": {
        "type": "object", "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "minLength": 1}}}}},
    {"required": ["request"]}, {"required": ["response"]}]}
_BUNDLE_BODY = {
    "required": True,
    "description": "A FHIR R4 Bundle (any type) holding the patients' resources.",
    "content": {
        ct: {"schema": {"type": "object", "required": ["resourceType"],
                        "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]},
                                       "entry": {"type": "array", "items": _ENTRY}}}}
        for ct in ("application/fhir+json", "application/json")
    },
}
_AS_OF = {"name": "as_of", "in": "query", "required": False,
          "schema": {"type": "string", "format": "date", "pattern": AS_OF_PATTERN},
          "description": f"Assessment date (YYYY-MM-DD, {AS_OF_MIN} to {AS_OF_MAX}); default: today."}
_FHIR_BUNDLE_DOC = {**BUNDLE, "description": "A FHIR transaction Bundle (the write-back)"}
_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}}
_READY = {"type": "object", "required": ["status", "drugs"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not-ready"]}, "drugs": {"type": "integer"},
    "fhir_server": {"type": "string"}}}


def _as_of(svc: Service) -> date:
    raw = request.args.get("as_of")
    if raw is None:
        return svc.as_of()
    return parse_as_of(raw)


def _wants_fhir() -> bool:
    """True for Accept: application/fhir+json; JSON is the default; 406 when neither is accepted."""
    accept = request.accept_mimetypes
    if not accept or not request.headers.get("Accept"):
        return False
    best = accept.best_match(["application/json", FHIR_JSON, "application/json+fhir"])
    if best is None:
        raise NotAcceptable(
            "Accept must allow application/json (assessment) or application/fhir+json "
            "(transaction Bundle)", expression="Accept",
        )
    return best != "application/json"


def check_bundle(body: Any) -> dict[str, Any]:
    """The body as a Bundle, or a 400 naming the element that is not FHIR."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a FHIR Bundle object", expression="Bundle")
    rtype = body.get("resourceType")
    if rtype != "Bundle":
        raise BadRequest(f"expected resourceType Bundle, got {rtype!r}", expression="resourceType")
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array", expression="Bundle.entry")
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"{where} must be an object", expression=where)
        resource = entry.get("resource")
        if resource is None and ("request" in entry or "response" in entry):
            continue  # e.g. a DELETE entry of a transaction, or a response entry
        if not isinstance(resource, dict):
            raise BadRequest(f"{where}.resource must be a FHIR resource", expression=f"{where}.resource")
        if not isinstance(resource.get("resourceType"), str) or not resource["resourceType"]:
            raise BadRequest(
                f"{where}.resource has no resourceType", expression=f"{where}.resource.resourceType"
            )
    return body


def _respond(svc: Service, results: list[PatientResult], fhir: bool,
             extra: dict[str, Any] | None = None) -> Response:
    dumped = [dump_result(r) for r in results]
    if fhir:
        return json_response(transaction_of(svc, dumped), mimetype=FHIR_JSON)
    return json_response({"results": dumped, **(extra or {})})


def _respond_dumped(svc: Service, dumped: list[dict[str, Any]], fhir: bool) -> Response:
    if fhir:
        return json_response(transaction_of(svc, dumped), mimetype=FHIR_JSON)
    return json_response({"results": dumped})


@blp.route("/$classify", methods=["POST"])
@blp.doc(operationId="classifyBundle", summary="Classify the patients of a FHIR Bundle",
         parameters=[_AS_OF], requestBody=_BUNDLE_BODY, security=[{"bearer": []}])
@blp.alt_response(200, schema=ResultsSchema, content_type="application/json", success=True,
                  description="The assessment JSON (clinical-spec §9), one result per patient")
@blp.alt_response(200, schema=_FHIR_BUNDLE_DOC, content_type=FHIR_JSON, success=True,
                  description="With Accept: application/fhir+json, the write-back transaction")
@blp.doc(responses=errors({
    400: "Bad input: not JSON, too deep, not a Bundle, an entry without a resource, a bad as_of",
    401: "Missing or invalid credentials (rest_auth on)", 406: "Accept allows neither representation",
    413: "Body over max_body_bytes", 415: "Content-Type is not JSON"}, cds=False))
def classify_bundle_view() -> Response:
    svc = service()
    svc.auth.rest_client(request.headers.get("Authorization"), request.path)
    as_of = _as_of(svc)
    fhir = _wants_fhir()
    body = read_json(request, max_bytes=svc.settings.max_body_bytes,
                     max_depth=svc.settings.max_json_depth, media_types=FHIR_JSON_TYPES)
    report = ReadReport()
    results = classify_bundle(check_bundle(body), svc.terminology, as_of, report=report)
    return _respond(svc, results, fhir, {"warnings": WarningSchema(many=True).dump(report.warnings)})


@blp.route("/Patient/<string:patient_id>/$classify", methods=["POST"])
@blp.doc(operationId="classifyPatient",
         summary="Fetch one patient from the configured FHIR server and classify them",
         parameters=[{"name": "patient_id", "in": "path", "required": True, "schema": FHIR_ID,
                      "description": "The patient's id on the configured FHIR server"},
                     _AS_OF, {"name": "write", "in": "query", "required": False,
                              "schema": {"type": "boolean"},
                              "description": "true: also write the results back to the server"}],
         security=[{"bearer": []}])
@blp.alt_response(200, schema=ResultsSchema, content_type="application/json", success=True,
                  description="The assessment JSON; with write=true also `written`")
@blp.alt_response(200, schema=_FHIR_BUNDLE_DOC, content_type=FHIR_JSON, success=True,
                  description="With Accept: application/fhir+json, the transaction "
                              "(with write=true, the server's transaction-response)")
@blp.doc(responses=errors({
    400: "The id is not a FHIR id, or a bad as_of or write", 401: "Missing or invalid credentials",
    404: "No such patient on the FHIR server", 406: "Accept allows neither representation",
    501: "No FHIR server is configured (fhir_base_url)", 502: "The FHIR server failed"}, cds=False))
def classify_patient_view(patient_id: str) -> Response:
    svc = service()
    svc.auth.rest_client(request.headers.get("Authorization"), request.path)
    if not is_fhir_id(patient_id):
        raise BadRequest(f"{patient_id!r} is not a FHIR id", expression="Patient.id")
    as_of = _as_of(svc)
    fhir = _wants_fhir()
    write = request.args.get("write", "false").lower()
    if write not in ("true", "false"):
        raise BadRequest("write must be true or false", expression="write")
    from fhirtrd.smart.rest import SERVER_HEADER, TOKEN_HEADER, classify_with_user_token

    if request.headers.get(SERVER_HEADER):  # the user's own server and token (fhirtrd.smart.rest)
        if write == "true":
            raise BadRequest("write=true is not available with a per-request FHIR server", expression="write")
        view = classify_with_user_token(svc, request.headers[SERVER_HEADER], request.headers.get(TOKEN_HEADER),
                                        patient_id, as_of)
        return _respond_dumped(svc, [view.result], fhir)
    base = svc.settings.fhir_base_url
    if base is None:
        raise NotConfigured("no FHIR server is configured (setting fhir_base_url)")
    fetcher = FhirFetcher(svc.session, base, token=svc.settings.fhir_bearer_token,
                          timeout=svc.settings.fhir_timeout_seconds,
                          max_pages=svc.settings.fhir_max_pages)
    try:
        resources = fetcher.patient_data(patient_id)
    except NotFound as exc:
        raise NotFound(f"Patient/{patient_id} was not found on the FHIR server",
                       expression="Patient.id") from exc
    results = [r for r in classify_resources(resources, svc.terminology, as_of, source=base)
               if r.patient == f"Patient/{patient_id}"]
    if write != "true":
        return _respond(svc, results, fhir)
    transaction = transaction_of(svc, [dump_result(r) for r in results])
    answer = _post_transaction(svc, base, transaction)
    if fhir:
        return json_response(answer, mimetype=FHIR_JSON)
    statuses = [(e.get("response") or {}).get("status", "") for e in answer.get("entry") or []
                if isinstance(e, dict)]
    return _respond(svc, results, False, {"written": {"entries": len(statuses),
                                                      "statuses": statuses}})


def _post_transaction(svc: Service, base: str, bundle: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    if svc.settings.fhir_bearer_token:
        headers["Authorization"] = f"Bearer {svc.settings.fhir_bearer_token}"
    try:
        response = svc.session.post(base.rstrip("/"), json=bundle, headers=headers,
                                    timeout=svc.settings.fhir_timeout_seconds)
    except requests.RequestException as exc:
        raise UpstreamError(f"POST transaction failed: {exc.__class__.__name__}") from exc
    if response.status_code >= 400:
        raise UpstreamError(f"POST transaction -> HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError as exc:
        raise UpstreamError("POST transaction: the answer is not JSON") from exc
    if not isinstance(answer, dict):
        raise UpstreamError("POST transaction: the answer is not a Bundle")
    return answer


@blp.route("/healthz", methods=["GET"])
@blp.doc(operationId="healthz", summary="Liveness: the process answers")
@blp.alt_response(200, schema=_HEALTH, content_type="application/json", success=True,
                  description="The process answers")
def healthz() -> Response:
    return json_response({"status": "ok"})


@blp.route("/readyz", methods=["GET"])
@blp.doc(operationId="readyz",
         summary="Readiness: mappings loaded; the configured FHIR server (if any) answers")
@blp.alt_response(200, schema=_READY, content_type="application/json", success=True,
                  description="Ready to serve")
@blp.alt_response(503, schema=_READY, content_type="application/json",
                  description="The configured FHIR server does not answer")
def readyz() -> Response:
    svc = service()
    body: dict[str, Any] = {"status": "ready", "drugs": len(svc.terminology.rules.drugs)}
    base = svc.settings.fhir_base_url
    if base is not None:
        fetcher = FhirFetcher(svc.session, base, token=svc.settings.fhir_bearer_token, timeout=2.0)
        try:
            fetcher.get("metadata")
            body["fhir_server"] = "ok"
        except HttpError as exc:
            body.update(status="not-ready", fhir_server=exc.message)
            return json_response(body, 503)
    return json_response(body)
