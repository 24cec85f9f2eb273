"""A corpus of bad requests: each gets a precise 4xx in its door's error format, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from api_samples import (
    EHR_FHIR,
    PATIENT_ID,
    SERVICE_URL,
    Signer,
    bundle,
    hook_request,
    patient,
    phq9,
    two_failed_ssri_trials,
)

FHIR = "application/fhir+json"
JSON = "application/json"
PV = "/cds-services/fhirtrd-patient-view"
LIMIT = 64 * 1024


NO_DATA = {key: None for key in ("conditions", "medicationRequests", "medicationStatements",
                                 "medicationDispenses", "scores", "labs", "procedures",
                                 "intolerances")}


def pv(context: Any = None, prefetch: Any = None, **extra: Any) -> bytes:
    ctx = {"patientId": PATIENT_ID} if context in (None, "drop") else context
    body = hook_request("patient-view", ctx,
                        {"patient": patient(), **NO_DATA} if prefetch is None else prefetch,
                        **extra)
    if context == "drop":
        del body["context"]
    return orjson.dumps(body)


def nested(depth: int) -> bytes:
    return b'{"resourceType":"Bundle","entry":[' + b"[" * depth + b"]" * depth + b"]}"


@dataclass
class Case:
    name: str
    path: str
    body: bytes | None
    status: int
    content_type: str = FHIR
    method: str = "POST"
    expression: str | None = None  # expected OperationOutcome issue.expression
    token: Callable[[Signer], str] | None = None  # a JWT for the secured app
    headers: dict[str, str] = field(default_factory=dict)


CASES = [
    # REST /$classify: the body
    Case("malformed JSON", "/$classify", b'{"resourceType": "Bundle",', 400),
    Case("empty body", "/$classify", b"", 400),
    Case("invalid UTF-8", "/$classify", b'{"resourceType": "Bundle\xff"}', 400),
    Case("wrong content type", "/$classify", orjson.dumps(bundle([])), 415,
         content_type="text/plain", expression="Content-Type"),
    Case("no content type", "/$classify", orjson.dumps(bundle([])), 415, content_type=""),
    Case("huge body", "/$classify", b'{"resourceType":"Bundle","x":"' + b"a" * LIMIT + b'"}', 413),
    Case("wrong resourceType", "/$classify", orjson.dumps(patient()), 400,
         expression="resourceType"),
    Case("JSON array", "/$classify", b"[1, 2]", 400, expression="Bundle"),
    Case("JSON string", "/$classify", b'"Bundle"', 400, expression="Bundle"),
    Case("entry not an array", "/$classify", b'{"resourceType":"Bundle","entry":{}}', 400,
         expression="Bundle.entry"),
    Case("entry without resourceType", "/$classify",
         orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": patient()},
                                                            {"resource": {"id": "x"}}]}),
         400, expression="Bundle.entry[1].resource.resourceType"),
    Case("entry not an object", "/$classify", b'{"resourceType":"Bundle","entry":[1]}', 400,
         expression="Bundle.entry[0]"),
    Case("nesting over the limit", "/$classify", nested(100), 400),
    Case("nesting over the parser's limit", "/$classify", nested(5000), 400),
    Case("bad as_of", "/$classify?as_of=2024-13-01", orjson.dumps(bundle([])), 400,
         expression="as_of"),
    Case("GET on an operation", "/$classify", None, 405, method="GET"),
    Case("unknown route", "/Patient", None, 404, method="GET"),
    Case("bad patient id", "/Patient/a*b/$classify", None, 400, expression="Patient.id"),
    Case("bad write flag", "/Patient/p1/$classify?write=yes", None, 400, expression="write"),
    # CDS Hooks
    Case("CDS malformed JSON", PV, b"{", 400, content_type=JSON),
    Case("CDS wrong content type", PV, pv(), 415, content_type="application/xml"),
    Case("CDS huge body", PV, b'{"x":"' + b"a" * LIMIT + b'"}', 413, content_type=JSON),
    Case("CDS missing context", PV, pv(context="drop"), 400, content_type=JSON),
    Case("CDS missing patientId", PV, pv(context={"userId": "Practitioner/1"}), 400,
         content_type=JSON),
    Case("CDS patientId not an id", PV, pv(context={"patientId": "../../etc"}), 400,
         content_type=JSON),
    Case("CDS wrong hook", PV, orjson.dumps(hook_request("order-sign", {"patientId": "p"})), 400,
         content_type=JSON),
    Case("CDS unknown service", "/cds-services/nope", pv(), 404, content_type=JSON),
    Case("CDS prefetch not an object", PV, pv(prefetch=["x"]), 400, content_type=JSON),
    Case("CDS prefetch value a string", PV, pv(prefetch={"patient": "Patient/1"}), 400,
         content_type=JSON),
    Case("CDS order-sign without draftOrders", "/cds-services/fhirtrd-order-sign",
         orjson.dumps(hook_request("order-sign", {"patientId": PATIENT_ID})), 400,
         content_type=JSON),
    Case("CDS order-select without selections", "/cds-services/fhirtrd-order-select",
         orjson.dumps(hook_request("order-select", {"patientId": PATIENT_ID,
                                                    "draftOrders": bundle([])})), 400,
         content_type=JSON),
    Case("CDS disallowed fhirServer", PV,
         pv(prefetch={"patient": patient()}, fhirServer="http://169.254.169.254/latest"), 412,
         content_type=JSON),
    Case("CDS no fhirServer for missing prefetch", PV, pv(prefetch={"patient": patient()}), 412,
         content_type=JSON),
    Case("CDS fhirAuthorization not an object", PV,
         pv(prefetch={"patient": patient()}, fhirServer=EHR_FHIR, fhirAuthorization="token"), 400,
         content_type=JSON),
    Case("CDS feedback without items", PV + "/feedback", b'{"feedback": []}', 400,
         content_type=JSON),
    Case("CDS feedback bad outcome", PV + "/feedback",
         orjson.dumps({"feedback": [{"card": "c", "outcome": "ignored",
                                     "outcomeTimestamp": "2024-01-01T00:00:00Z"}]}), 400,
         content_type=JSON),
    # credentials (secured app)
    Case("no Authorization", PV, pv(), 401, content_type=JSON, token=lambda s: ""),
    Case("invalid JWT", PV, pv(), 401, content_type=JSON, token=lambda s: "abc.def.ghi"),
    Case("expired JWT", PV, pv(), 401, content_type=JSON,
         token=lambda s: s.token(SERVICE_URL + PV, exp_in=-300)),
    Case("JWT for another service", PV, pv(), 401, content_type=JSON,
         token=lambda s: s.token("https://other.example" + PV)),
    Case("JWT from an untrusted issuer", PV, pv(), 401, content_type=JSON,
         token=lambda s: s.token(SERVICE_URL + PV, iss="https://evil.example")),
    Case("JWT signed by another key", PV, pv(), 401, content_type=JSON,
         token=lambda s: Signer().token(SERVICE_URL + PV)),
    Case("REST wrong API key", "/$classify", orjson.dumps(bundle([])), 401,
         token=lambda s: "wrong-key"),
    Case("REST basic auth", "/$classify", orjson.dumps(bundle([])), 401,
         token=lambda s: "", headers={"Authorization": "Basic dXNlcjpwYXNz"}),
]


@pytest.fixture(scope="module")
def small_apps(make_app: Any, signer: Signer) -> dict[str, Any]:
    return {
        "open": make_app(max_body_bytes=LIMIT, max_json_depth=64),
        "secured": make_app(max_body_bytes=LIMIT, cds_auth=True, rest_auth=True,
                            api_keys=["k"], trusted_issuers=[{"issuer": "https://ehr.example.org",
                                                              "jwks": signer.jwks}]),
    }


def send(app: Any, case: Case, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if case.body is not None:
        kwargs["data"] = case.body
        if case.content_type:
            kwargs["content_type"] = case.content_type
    return app.test_client().open(case.path, method=case.method, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_request_gets_a_precise_error(case: Case, small_apps: dict[str, Any],
                                          signer: Signer, fake_http: Any) -> None:
    headers = dict(case.headers)
    app = small_apps["open"]
    if case.token is not None:
        app = small_apps["secured"]
        token = case.token(signer)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    r = send(app, case, headers)
    assert r.status_code == case.status, r.get_data(as_text=True)
    if case.path.startswith("/cds-services"):
        assert r.mimetype == JSON
        assert set(r.json) == {"error", "message"} and r.json["message"]
    else:
        assert r.mimetype == FHIR
        [issue] = r.json["issue"]
        assert r.json["resourceType"] == "OperationOutcome" and issue["severity"] == "error"
        assert issue["diagnostics"]
        if case.expression is not None:
            assert issue["expression"] == [case.expression]
    if case.status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(fake_http.calls) == 0  # no bad request makes the service call out


def test_replayed_jti_is_refused_the_second_time(small_apps: dict[str, Any], signer: Signer) -> None:
    token = signer.token(SERVICE_URL + PV)
    case = Case("replay", PV, pv(), 200, content_type=JSON)
    headers = {"Authorization": f"Bearer {token}"}
    assert send(small_apps["secured"], case, headers).status_code == 200
    r = send(small_apps["secured"], case, headers)
    assert r.status_code == 401 and "replay" in r.json["message"]


def test_bad_data_inside_resources_is_a_warning_not_an_error(open_app: Any) -> None:
    """Content problems inside well-formed entries are reported per resource; the rest is used."""
    broken = phq9("broken", 12, "2023-06-01")
    broken["valueQuantity"] = {"value": "twelve"}
    broken_date = phq9("no-date", 12, "2023-06-01")
    del broken_date["effectiveDateTime"]
    body = bundle([*two_failed_ssri_trials(), broken, broken_date])
    r = open_app.test_client().post("/$classify", json=body, content_type=FHIR)
    assert r.status_code == 200
    [result] = r.json["results"]
    assert result["assessments"][0]["failed_adequate_trials"] == 2
    flagged = {w["resource"] for w in result["warnings"]}
    assert {"Observation/broken", "Observation/no-date"} <= flagged
