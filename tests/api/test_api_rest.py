"""REST operations through the Flask test client: /$classify, /Patient/{id}/$classify, health."""

from __future__ import annotations

from typing import Any

import responses
from api_samples import (
    AS_OF,
    PATIENT_ID,
    bundle,
    mdd_condition,
    patient,
    searchset,
    two_failed_ssri_trials,
)

FHIR = "application/fhir+json"
HAPI = "http://hapi.local:8080/fhir"


def test_classify_bundle_answers_the_assessment_json(open_app: Any) -> None:
    r = open_app.test_client().post("/$classify", json=bundle(two_failed_ssri_trials()),
                                    content_type=FHIR)
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    [result] = r.json["results"]
    assert result["patient"] == f"Patient/{PATIENT_ID}"
    assert result["as_of"] == AS_OF
    [mdd] = result["assessments"]
    assert (mdd["disorder"], mdd["stage"], mdd["failed_adequate_trials"]) == ("mdd", "I", 2)
    assert [t["treatment"] for t in mdd["trials"]] == ["citalopram", "sertraline"]


def test_as_of_query_moves_the_assessment_date(open_app: Any) -> None:
    r = open_app.test_client().post("/$classify?as_of=2023-03-01",
                                    json=bundle(two_failed_ssri_trials()), content_type=FHIR)
    [mdd] = r.json["results"][0]["assessments"]
    assert r.json["results"][0]["as_of"] == "2023-03-01"
    assert mdd["failed_adequate_trials"] == 0  # the first trial was still running


def test_accept_fhir_json_answers_the_write_back_transaction(open_app: Any) -> None:
    r = open_app.test_client().post("/$classify", json=bundle(two_failed_ssri_trials()),
                                    content_type=FHIR, headers={"Accept": FHIR})
    assert r.status_code == 200
    assert r.mimetype == FHIR
    assert (r.json["resourceType"], r.json["type"]) == ("Bundle", "transaction")
    types = {e["resource"]["resourceType"] for e in r.json["entry"]}
    assert {"Observation", "Flag", "Provenance"} <= types


def test_two_patients_make_one_transaction_with_one_shared_device(open_app: Any) -> None:
    both = two_failed_ssri_trials("a") + two_failed_ssri_trials("b")
    r = open_app.test_client().post("/$classify", json=bundle(both), content_type=FHIR,
                                    headers={"Accept": FHIR})
    full_urls = [e["fullUrl"] for e in r.json["entry"]]
    assert len(full_urls) == len(set(full_urls))
    assert sum(e["resource"]["resourceType"] == "Device" for e in r.json["entry"]) == 1
    flags = [e["resource"]["subject"]["reference"] for e in r.json["entry"]
             if e["resource"]["resourceType"] == "Flag"]
    assert sorted(set(flags)) == ["Patient/a", "Patient/b"]


def test_accept_text_html_is_not_acceptable(open_app: Any) -> None:
    r = open_app.test_client().post("/$classify", json=bundle([patient()]), content_type=FHIR,
                                    headers={"Accept": "text/html"})
    assert r.status_code == 406
    assert r.json["issue"][0]["expression"] == ["Accept"]


def _fake_hapi(fake: responses.RequestsMock, resources: list[dict[str, Any]]) -> None:
    """A FHIR server holding `resources`: Patient read and per-type patient searches."""
    fake.get(f"{HAPI}/Patient/{PATIENT_ID}", json=patient())
    for rtype in ("Condition", "MedicationRequest", "MedicationStatement", "MedicationDispense",
                  "MedicationAdministration", "Observation", "Procedure", "AllergyIntolerance"):
        matches = [r for r in resources if r["resourceType"] == rtype]
        fake.get(f"{HAPI}/{rtype}", json=searchset(matches),
                 match=[responses.matchers.query_param_matcher(
                     {"patient": PATIENT_ID, "_count": "200"})])


def test_classify_patient_fetches_from_the_configured_server(make_app: Any, fake_http: Any) -> None:
    app = make_app(fhir_base_url=HAPI, fhir_bearer_token="server-token")
    _fake_hapi(fake_http, two_failed_ssri_trials())
    r = app.test_client().post(f"/Patient/{PATIENT_ID}/$classify")
    assert r.status_code == 200, r.json
    [mdd] = r.json["results"][0]["assessments"]
    assert mdd["failed_adequate_trials"] == 2
    assert all(c.request.headers["Authorization"] == "Bearer server-token" for c in fake_http.calls)


def test_classify_patient_follows_paging_on_the_same_server(make_app: Any, fake_http: Any) -> None:
    app = make_app(fhir_base_url=HAPI)
    resources = two_failed_ssri_trials()
    _fake_hapi(fake_http, [r for r in resources if r["resourceType"] != "Observation"])
    fake_http.replace(responses.GET, f"{HAPI}/Observation", json={
        **searchset([r for r in resources if r["resourceType"] == "Observation"][:2]),
        "link": [{"relation": "next", "url": f"{HAPI}?_getpages=abc&_page=2"}]})
    fake_http.get(HAPI, json=searchset([r for r in resources
                                        if r["resourceType"] == "Observation"][2:]),
                  match=[responses.matchers.query_param_matcher(
                      {"_getpages": "abc", "_page": "2"})])
    r = app.test_client().post(f"/Patient/{PATIENT_ID}/$classify")
    [mdd] = r.json["results"][0]["assessments"]
    assert mdd["failed_adequate_trials"] == 2  # the scores of page 2 were used


def test_classify_patient_with_write_posts_the_transaction(make_app: Any, fake_http: Any) -> None:
    app = make_app(fhir_base_url=HAPI)
    _fake_hapi(fake_http, two_failed_ssri_trials())
    posted: list[dict[str, Any]] = []

    def accept(request: Any) -> tuple[int, dict[str, str], str]:
        import json
        body = json.loads(request.body)
        posted.append(body)
        answer = {"resourceType": "Bundle", "type": "transaction-response",
                  "entry": [{"response": {"status": "201 Created"}} for _ in body["entry"]]}
        return 200, {"Content-Type": FHIR}, json.dumps(answer)

    fake_http.add_callback(responses.POST, HAPI, callback=accept)
    r = app.test_client().post(f"/Patient/{PATIENT_ID}/$classify?write=true")
    assert r.status_code == 200
    assert len(posted) == 1 and posted[0]["type"] == "transaction"
    assert r.json["written"]["entries"] == len(posted[0]["entry"])
    assert set(r.json["written"]["statuses"]) == {"201 Created"}


def test_unknown_patient_is_a_404_outcome(make_app: Any, fake_http: Any) -> None:
    app = make_app(fhir_base_url=HAPI)
    fake_http.get(f"{HAPI}/Patient/nobody", status=404,
                  json={"resourceType": "OperationOutcome", "issue": []})
    r = app.test_client().post("/Patient/nobody/$classify")
    assert r.status_code == 404
    assert r.json["resourceType"] == "OperationOutcome"
    assert "Patient/nobody" in r.json["issue"][0]["diagnostics"]


def test_failing_server_is_a_502_outcome(make_app: Any, fake_http: Any) -> None:
    app = make_app(fhir_base_url=HAPI)
    fake_http.get(f"{HAPI}/Patient/{PATIENT_ID}", json=patient())
    fake_http.get(f"{HAPI}/Condition", status=503)
    r = app.test_client().post(f"/Patient/{PATIENT_ID}/$classify")
    assert r.status_code == 502
    assert r.json["issue"][0]["code"] == "transient"


def test_classify_patient_without_a_server_is_not_configured(open_app: Any) -> None:
    r = open_app.test_client().post(f"/Patient/{PATIENT_ID}/$classify")
    assert r.status_code == 501
    assert "fhir_base_url" in r.json["issue"][0]["diagnostics"]


def test_rest_auth_accepts_an_api_key_and_a_jwt(secured_app: Any, signer: Any) -> None:
    client = secured_app.test_client()
    body = bundle([patient(), mdd_condition()])
    r = client.post("/$classify", json=body, content_type=FHIR,
                    headers={"Authorization": "Bearer test-api-key"})
    assert r.status_code == 200
    token = signer.token("https://cds.example.org/$classify")
    r = client.post("/$classify", json=body, content_type=FHIR,
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    r = client.post("/$classify", json=body, content_type=FHIR)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_and_readiness(make_app: Any, open_app: Any, fake_http: Any) -> None:
    client = open_app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    app = make_app(fhir_base_url=HAPI)
    fake_http.get(f"{HAPI}/metadata", status=503)
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["status"] == "not-ready"


def test_secured_service_keeps_health_and_docs_open(secured_app: Any) -> None:
    client = secured_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
