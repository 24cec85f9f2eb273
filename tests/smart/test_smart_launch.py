"""SMART launch edges without a browser: settings, PKCE, discovery, state, client kinds, no token in logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask.testing import FlaskClient

from fhirtrd.api import create_app
from fhirtrd.api.errors import ConfigError
from fhirtrd.smart.cards import smart_link
from fhirtrd.smart.oauth import pkce_pair
from fhirtrd.smart.settings import smart_settings

ISS = "https://ehr.example.org/fhir"
AUTH = "https://auth.example.org/authorize"
TOKEN = "https://auth.example.org/token"
SECRET_TOKEN = "eyJhbGciOiJIUzI1NiJ9.the-users-access-token.sig"


def client(**smart: Any) -> FlaskClient:
    config = {"client_id": "app", "issuers": [{"iss": ISS}], **smart}
    return create_app({"public_url": "https://fhirtrd.example.org", "docs": False, "smart": config}).test_client()


def discovery(methods: list[str] | None = None) -> None:
    responses.get(f"{ISS}/.well-known/smart-configuration",
                  json={"authorization_endpoint": AUTH, "token_endpoint": TOKEN,
                        "code_challenge_methods_supported": methods or ["S256"]})


def launch(c: FlaskClient, **params: str) -> dict[str, list[str]]:
    response = c.get("/smart/launch", query_string={"iss": ISS, **params})
    assert response.status_code == 302, response.text
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == AUTH
    return parse_qs(target.query)


def test_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@responses.activate
def test_ehr_launch_discovers_endpoints_and_asks_with_pkce_state_aud_launch_and_v2_scopes() -> None:
    discovery()
    q = launch(client(), launch="xyz")
    assert q["response_type"] == ["code"] and q["client_id"] == ["app"]
    assert q["redirect_uri"] == ["https://fhirtrd.example.org/smart/callback"]
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
    assert q["aud"] == [ISS] and q["launch"] == ["xyz"] and len(q["state"][0]) >= 32
    assert q["scope"] == ["launch patient/*.rs"]


@responses.activate
def test_standalone_launch_on_a_v1_server_asks_for_the_patient_and_v1_scopes() -> None:
    discovery()
    q = launch(client(issuers=[{"iss": ISS, "scope_version": "v1"}]))
    assert q["scope"] == ["launch/patient patient/*.read"]
    assert "launch" not in q


@responses.activate
def test_a_server_without_s256_is_refused_with_a_clear_page() -> None:
    discovery(["plain"])
    response = client().get("/smart/launch", query_string={"iss": ISS})
    assert response.status_code == 502 and "PKCE S256" in response.text


def test_an_iss_off_the_allowlist_is_refused_without_any_request() -> None:
    with responses.RequestsMock():  # any outgoing request would fail the test
        response = client().get("/smart/launch", query_string={"iss": "http://169.254.169.254/latest"})
    assert response.status_code == 400 and "not one the app is configured for" in response.text
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def token_answer(**extra: Any) -> None:
    responses.post(TOKEN, json={"access_token": SECRET_TOKEN, "token_type": "Bearer", "expires_in": 300,
                                "scope": "launch patient/*.rs", "patient": "p-stage2", **extra})


@responses.activate
def test_callback_opens_a_server_side_session_and_the_state_cannot_be_replayed(caplog: pytest.LogCaptureFixture
                                                                                 ) -> None:
    caplog.set_level(logging.DEBUG)
    discovery()
    token_answer()
    c = client()
    q = launch(c, launch="xyz")
    response = c.get("/smart/callback", query_string={"code": "the-code", "state": q["state"][0]})
    assert response.status_code == 303 and response.headers["Location"].endswith("/smart/app")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert SECRET_TOKEN not in cookie
    sent = parse_qs(responses.calls[-1].request.body)
    assert sent["code_verifier"][0] and sent["client_id"] == ["app"]  # public client: id in the body
    replay = c.get("/smart/callback", query_string={"code": "the-code", "state": q["state"][0]})
    assert replay.status_code == 400 and "unknown or expired" in replay.text
    assert SECRET_TOKEN not in caplog.text


@responses.activate
def test_a_confidential_client_authenticates_with_basic_and_keeps_the_id_out_of_the_body() -> None:
    discovery()
    token_answer()
    c = client(client_secret="s3cret")
    q = launch(c, launch="xyz")
    assert c.get("/smart/callback", query_string={"code": "c", "state": q["state"][0]}).status_code == 303
    request = responses.calls[-1].request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"app:s3cret").decode()
    assert "client_id" not in parse_qs(request.body)


@responses.activate
def test_a_token_response_without_a_patient_is_answered_plainly() -> None:
    discovery()
    responses.post(TOKEN, json={"access_token": SECRET_TOKEN, "token_type": "Bearer"})
    c = client()
    q = launch(c)
    response = c.get("/smart/callback", query_string={"code": "c", "state": q["state"][0]})
    assert response.status_code == 400 and "names no patient" in response.text
    assert SECRET_TOKEN not in response.text


def test_the_app_page_without_a_session_asks_to_launch_again() -> None:
    response = client().get("/smart/app")
    assert response.status_code == 401 and "launch the app" in response.text


def test_without_smart_settings_the_app_is_not_served() -> None:
    c = create_app({"docs": False}).test_client()
    assert c.get("/smart/").status_code == 404


@pytest.mark.parametrize(("raw", "key"), [
    ({"client_id": "a", "issuers": [{"iss": ISS}], "colour": "red"}, "smart"),
    ({"issuers": [{"iss": ISS}]}, "smart.client_id"),
    ({"client_id": "a", "issuers": []}, "smart.issuers"),
    ({"client_id": "a", "issuers": [{"iss": "ftp://x"}]}, "smart.issuers[0].iss"),
    ({"client_id": "a", "issuers": [{"iss": ISS, "authorize_url": AUTH}]}, "smart.issuers[0]"),
    ({"client_id": "a", "issuers": [{"iss": ISS, "scope_version": "v3"}]}, "smart.issuers[0].scope_version"),
    ({"client_id": "a", "issuers": [{"iss": ISS}], "cookie_samesite": "Sometimes"}, "smart.cookie_samesite"),
])
def test_bad_smart_settings_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        smart_settings(raw, "https://fhirtrd.example.org")
    assert err.value.key == key


def test_the_cds_card_link_opens_the_app_with_the_finding_as_app_context() -> None:
    link = smart_link("https://fhirtrd.example.org/", "mdd", "nonadherence")
    assert link["type"] == "smart" and link["url"] == "https://fhirtrd.example.org/smart/launch"
    assert json.loads(link["appContext"]) == {"disorder": "mdd", "finding": "nonadherence"}


@responses.activate
def test_the_users_token_never_follows_a_next_link_off_the_server() -> None:
    from datetime import date

    from fhirtrd.server.errors import UnexpectedResponse
    from fhirtrd.smart.data import fetch_and_classify
    from fhirtrd.terminology import load_terminology

    responses.get(f"{ISS}/metadata", json={
        "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": [{"type": "Patient", "operation": [{"name": "everything"}]}]}]})
    responses.get(f"{ISS}/Patient/p1/$everything", json={
        "resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "next", "url": "https://elsewhere.example.com/steal?page=2"}],
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]})
    with pytest.raises(UnexpectedResponse) as err:
        fetch_and_classify(ISS, SECRET_TOKEN, "p1", load_terminology(), date(2025, 1, 15))
    assert "elsewhere.example.com" in str(err.value) and SECRET_TOKEN not in str(err.value)
    assert all(call.request.url.startswith(ISS) for call in responses.calls)
    assert all(call.request.headers["Authorization"] == f"Bearer {SECRET_TOKEN}" for call in responses.calls)


def test_sessions_expire_and_are_shared_through_a_session_file(tmp_path: Any) -> None:
    from fhirtrd.smart.store import SessionStore

    now = [1000.0]
    path = str(tmp_path / "sessions.db")
    one, two = SessionStore(path, clock=lambda: now[0]), SessionStore(path, clock=lambda: now[0])
    one.put("session:a", {"patient": "p1"}, 60)
    assert two.get("session:a") == {"patient": "p1"}  # another worker sees it
    now[0] += 61
    assert two.get("session:a") is None  # expired
    one.put("pending:s", {"iss": ISS}, 60)
    assert two.pop("pending:s") == {"iss": ISS} and one.pop("pending:s") is None  # taken once
