"""`POST /Patient/{id}/$classify` with the user's own server and token, against the real test server."""

from __future__ import annotations

import time

import jwt
import pytest

from fhirtrd.api import create_app

from .conftest import AS_OF, Rig

pytestmark = pytest.mark.server


def user_token(rig: Rig, scope: str = "patient/*.rs", key: str | None = None) -> str:
    """A SMART access token as the authorization server signs it (HS256, shared with the FHIR server)."""
    claims = {"aud": rig.fhir.base_url, "scope": scope, "client_id": "someone-elses-app", "exp": int(time.time()) + 300}
    return jwt.encode(claims, key or rig.secret, algorithm="HS256")


def api(rig: Rig) -> object:
    return create_app({"docs": False, "as_of": AS_OF.isoformat(),
                       "fhir_server_allowlist": [rig.fhir.base_url]}).test_client()


def test_the_patient_is_read_with_the_users_token_and_classified(rig: Rig) -> None:
    c = api(rig)
    response = c.post("/Patient/p-stage2/$classify",  # type: ignore[attr-defined]
                      headers={"X-FHIR-Server": rig.fhir.base_url, "X-FHIR-Authorization": f"Bearer {user_token(rig)}"})
    assert response.status_code == 200, response.text
    (result,) = response.json["results"]
    assert result["patient"] == "Patient/p-stage2"
    assert result["assessments"][0]["stage"] == "II"
    assert len(result["assessments"][0]["trials"]) == 2


def test_a_server_off_the_allowlist_is_refused_naming_the_header(rig: Rig) -> None:
    response = api(rig).post("/Patient/p-stage2/$classify",  # type: ignore[attr-defined]
                             headers={"X-FHIR-Server": "http://127.0.0.1:9/fhir", "X-FHIR-Authorization": "Bearer x"})
    assert response.status_code == 403
    assert response.json["issue"][0]["expression"] == ["X-FHIR-Server"]


def test_a_token_the_server_refuses_is_a_403_naming_the_token_header(rig: Rig) -> None:
    bad = user_token(rig, key="not-the-shared-key-" * 3)
    response = api(rig).post("/Patient/p-stage2/$classify",  # type: ignore[attr-defined]
                             headers={"X-FHIR-Server": rig.fhir.base_url, "X-FHIR-Authorization": f"Bearer {bad}"})
    assert response.status_code == 403
    assert response.json["issue"][0]["expression"] == ["X-FHIR-Authorization"]
    assert bad not in response.text


def test_a_missing_token_and_write_back_are_bad_requests(rig: Rig) -> None:
    c = api(rig)
    r1 = c.post("/Patient/p-stage2/$classify", headers={"X-FHIR-Server": rig.fhir.base_url})  # type: ignore[attr-defined]
    assert r1.status_code == 400 and r1.json["issue"][0]["expression"] == ["X-FHIR-Authorization"]
    r2 = c.post("/Patient/p-stage2/$classify?write=true",  # type: ignore[attr-defined]
                headers={"X-FHIR-Server": rig.fhir.base_url, "X-FHIR-Authorization": f"Bearer {user_token(rig)}"})
    assert r2.status_code == 400 and r2.json["issue"][0]["expression"] == ["write"]
