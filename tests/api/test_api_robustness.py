"""Issue "Robustness and security", HTTP door: forged JWTs, odd dates and ids, mixed patients."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from api_samples import (
    EHR_FHIR,
    PATIENT_ID,
    SERVICE_URL,
    Signer,
    bundle,
    draft_order,
    hook_request,
    mdd_condition,
    prefetch_for,
    two_failed_ssri_trials,
)

from fhirtrd.api.errors import Unauthorized

PV = "/cds-services/fhirtrd-patient-view"
SIGN = "/cds-services/fhirtrd-order-sign"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(alg: str, aud: str, kid: str = "ehr-key-1") -> str:
    """A token whose header names `alg` over the trusted issuer's kid, with a random signature."""
    now = int(time.time())
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    payload = {"iss": "https://ehr.example.org", "sub": "ehr-client", "aud": aud, "iat": now,
               "exp": now + 300, "jti": str(uuid.uuid4())}
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()),
                     _b64(bytes(96))])


@pytest.mark.parametrize("alg", ["ES384", "ES256", "PS384", "EdDSA"])
def test_a_header_algorithm_that_does_not_fit_the_key_is_a_401(secured_app: Any, alg: str) -> None:
    """An ES384 header over the EHR's RSA key made PyJWT raise TypeError (a 500) before."""
    client = secured_app.test_client()
    r = client.get("/cds-services", headers={"Authorization": f"Bearer {forged(alg, SERVICE_URL + '/cds-services')}"})
    assert r.status_code == 401, r.json
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = client.post("/$classify", data="{}", headers={
        "Content-Type": "application/fhir+json", "Authorization": f"Bearer {forged(alg, SERVICE_URL + '/$classify')}"})
    assert r.status_code == 401 and r.json["resourceType"] == "OperationOutcome"


def test_an_rs384_header_on_an_ec_key_is_a_401() -> None:
    from fhirtrd.api.auth import JwtVerifier
    from fhirtrd.api.config import load_settings

    ec = Signer("ES384", kid="ec-1")
    settings = load_settings({"trusted_issuers": [{"issuer": "https://ehr.example.org", "jwks": ec.jwks}]})
    import requests

    with pytest.raises(Unauthorized, match="does not fit"):
        JwtVerifier(settings, requests.Session()).verify(forged("RS384", SERVICE_URL, "ec-1"), [SERVICE_URL])


@pytest.mark.parametrize("as_of", ["0001-01-01", "1899-12-31", "2200-01-01", "9999-12-31"])
def test_as_of_outside_the_supported_range_is_a_400(open_app: Any, as_of: str) -> None:
    r = open_app.test_client().post(f"/$classify?as_of={as_of}", json=bundle(two_failed_ssri_trials()))
    assert r.status_code == 400
    issue = r.json["issue"][0]
    assert issue["expression"] == ["as_of"] and "1900-01-01" in issue["diagnostics"]


def test_as_of_at_the_edges_of_the_range_is_assessed(open_app: Any) -> None:
    for as_of in ("1900-01-01", "2199-12-31"):
        r = open_app.test_client().post(f"/$classify?as_of={as_of}", json=bundle(two_failed_ssri_trials()))
        assert r.status_code == 200 and r.json["results"]


@pytest.mark.parametrize("pid", ["..", ".", "...", "a b", "x" * 65, "p-1\n"])
def test_a_patient_id_that_is_not_a_safe_fhir_id_is_a_400(open_app: Any, pid: str) -> None:
    body = hook_request("patient-view", {"patientId": pid}, {})
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 400 and "context.patientId" in r.json["message"]


def test_rest_patient_id_made_of_dots_is_refused(make_app: Any) -> None:
    app = make_app(fhir_base_url=EHR_FHIR)
    r = app.test_client().post("/Patient/.../$classify")
    assert r.status_code == 400 and r.json["issue"][0]["expression"] == ["Patient.id"]


def _templates(app: Any) -> dict[str, str]:
    return app.extensions["fhirtrd"].templates


def test_prefetch_about_another_patient_is_refused_and_nothing_is_assessed(open_app: Any) -> None:
    data = two_failed_ssri_trials() + [mdd_condition("someone-else")]
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch_for(_templates(open_app), data))
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 400
    assert "cards" not in r.json
    assert r.json["message"].startswith("prefetch.conditions.entry[1].resource (Condition) is about 'someone-else'")


def test_prefetch_patient_resource_of_another_patient_is_refused(open_app: Any) -> None:
    prefetch = prefetch_for(_templates(open_app), two_failed_ssri_trials("p-other"))
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch)
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 400 and r.json["message"].startswith("prefetch.patient (Patient)")


def test_prefetch_reference_to_the_same_id_on_another_server_is_refused(open_app: Any) -> None:
    data = two_failed_ssri_trials()
    data[1]["subject"] = {"reference": f"https://other-hospital.example/fhir/Patient/{PATIENT_ID}"}
    body = hook_request("patient-view", {"patientId": PATIENT_ID},
                        prefetch_for(_templates(open_app), data), fhirServer=EHR_FHIR)
    r = open_app.test_client().post(PV, json=body)
    assert r.status_code == 400 and "other-hospital.example" in r.json["message"]
    # the same absolute reference on the call's own fhirServer is this patient
    data[1]["subject"] = {"reference": f"{EHR_FHIR}/Patient/{PATIENT_ID}"}
    body["prefetch"] = prefetch_for(_templates(open_app), data)
    assert open_app.test_client().post(PV, json=body).status_code == 200


def test_a_draft_order_for_another_patient_is_refused(open_app: Any) -> None:
    orders = bundle([draft_order("draft-1", "escitalopram", 10, pid="p-other")])
    body = hook_request("order-sign", {"patientId": PATIENT_ID, "draftOrders": orders},
                        prefetch_for(_templates(open_app), two_failed_ssri_trials()))
    r = open_app.test_client().post(SIGN, json=body)
    assert r.status_code == 400
    assert r.json["message"].startswith("context.draftOrders.entry[0].resource (MedicationRequest) is about")
