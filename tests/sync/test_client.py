"""The server client against faults injected at the transport seam (responses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhirtrd.server.auth import BearerToken, ClientSecretAuth, SmartBackendAuth, load_signing_key
from fhirtrd.server.client import FhirClient, RateLimiter, RetryPolicy, ServerCapabilities
from fhirtrd.server.errors import (
    AuthError,
    PreconditionFailed,
    RequestRejected,
    ServerTimeout,
    TemporaryServerError,
)

BASE = "https://fhir.test/R4"
Reply = tuple[int, dict[str, str], str]


class ScriptedServer:
    """A fake server that answers from a script and remembers every request it received."""

    def __init__(self, script: list[Reply | Exception]) -> None:
        self.script = list(script)
        self.received: list[requests.PreparedRequest] = []

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        self.received.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step


def fhir(body: dict[str, Any], status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/fhir+json", **headers}, json.dumps(body)


def outcome(text: str, code: str = "processing") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


PATIENT = {"resourceType": "Patient", "id": "p1"}


def make_client(slept: list[float], **kw: Any) -> FhirClient:
    return FhirClient(BASE, retry=RetryPolicy(backoff=(0.5, 1.0, 2.0)), sleep=slept.append, **kw)


@responses.activate
def test_429_waits_as_long_as_retry_after_says_then_succeeds() -> None:
    server = ScriptedServer([fhir(outcome("slow down"), 429, **{"Retry-After": "7"}), fhir(PATIENT)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)
    slept: list[float] = []

    patient = make_client(slept).read("Patient", "p1")

    assert patient["id"] == "p1"
    assert slept == [7.0]
    assert len(server.received) == 2


@responses.activate
def test_503_then_success_backs_off_once() -> None:
    server = ScriptedServer([fhir(outcome("maintenance"), 503), fhir(PATIENT)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)
    slept: list[float] = []

    assert make_client(slept).read("Patient", "p1")["id"] == "p1"
    assert slept == [0.5]


@responses.activate
def test_a_server_that_stays_down_fails_after_the_last_retry_with_its_message() -> None:
    server = ScriptedServer([fhir(outcome("database is down"), 503)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)
    slept: list[float] = []

    with pytest.raises(TemporaryServerError) as caught:
        make_client(slept).read("Patient", "p1")

    assert "database is down" in str(caught.value)
    assert caught.value.status == 503
    assert len(server.received) == 4  # the first try and three retries
    assert slept == [0.5, 1.0, 2.0]


@responses.activate
def test_read_timeouts_are_retried_for_a_get() -> None:
    server = ScriptedServer([requests.ReadTimeout("read timed out"), requests.ConnectionError("reset"),
                             fhir(PATIENT)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)
    slept: list[float] = []

    assert make_client(slept).read("Patient", "p1")["id"] == "p1"
    assert slept == [0.5, 1.0]


def _transaction(conditional: bool) -> dict[str, Any]:
    request = (
        {"method": "PUT", "url": "Flag?identifier=http://fhirtrd.org/fhir/identifier|p1/mdd/flag"}
        if conditional
        else {"method": "POST", "url": "Flag"}
    )
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": {"resourceType": "Flag"}, "request": request}]}


@responses.activate
def test_a_timed_out_unconditional_post_is_not_repeated() -> None:
    server = ScriptedServer([requests.ReadTimeout("read timed out")])
    responses.add_callback(responses.POST, BASE, callback=server)
    slept: list[float] = []

    with pytest.raises(ServerTimeout):
        make_client(slept).transaction(_transaction(conditional=False))

    assert len(server.received) == 1
    assert slept == []


@responses.activate
def test_a_timed_out_conditional_transaction_is_repeated() -> None:
    response = {"resourceType": "Bundle", "type": "transaction-response", "entry": [{"response": {"status": "200"}}]}
    server = ScriptedServer([requests.ReadTimeout("read timed out"), fhir(response)])
    responses.add_callback(responses.POST, BASE, callback=server)
    slept: list[float] = []

    result = make_client(slept).transaction(_transaction(conditional=True))

    assert result["type"] == "transaction-response"
    assert len(server.received) == 2


@responses.activate
def test_412_from_a_conditional_update_is_reported_not_retried() -> None:
    server = ScriptedServer([fhir(outcome("Conditional update: criteria matched 2 resources", "multiple-matches"),
                                  412)])
    responses.add_callback(responses.POST, BASE, callback=server)
    slept: list[float] = []

    with pytest.raises(PreconditionFailed) as caught:
        make_client(slept).transaction(_transaction(conditional=True))

    assert caught.value.messages == ["error: Conditional update: criteria matched 2 resources"]
    assert len(server.received) == 1


@responses.activate
def test_a_rejected_transaction_surfaces_the_operation_outcome() -> None:
    rejection = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "structure", "diagnostics": "Flag.status is required",
         "expression": ["Bundle.entry[0].resource.status"]}]}
    server = ScriptedServer([fhir(rejection, 400)])
    responses.add_callback(responses.POST, BASE, callback=server)

    with pytest.raises(RequestRejected) as caught:
        make_client([]).transaction(_transaction(conditional=True))

    assert caught.value.status == 400
    assert "Flag.status is required (at Bundle.entry[0].resource.status)" in str(caught.value)
    assert len(server.received) == 1


@responses.activate
def test_search_follows_next_links_across_pages() -> None:
    def page(ids: list[str], next_url: str | None) -> Reply:
        links = [{"relation": "self", "url": "x"}] + ([{"relation": "next", "url": next_url}] if next_url else [])
        entries = [{"resource": {"resourceType": "Patient", "id": i}, "search": {"mode": "match"}} for i in ids]
        return fhir({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries})

    responses.add_callback(responses.GET, f"{BASE}/Patient", callback=ScriptedServer([page(["a", "b"], f"{BASE}/p2")]))
    responses.add_callback(responses.GET, f"{BASE}/p2", callback=ScriptedServer([page(["c"], "p3")]))
    responses.add_callback(responses.GET, f"{BASE}/p3", callback=ScriptedServer([page([], None)]))

    ids = [r["id"] for r in make_client([]).search("Patient", [("_count", "2")])]

    assert ids == ["a", "b", "c"]


@responses.activate
def test_static_bearer_token_is_sent() -> None:
    server = ScriptedServer([fhir(PATIENT)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)

    make_client([], auth=BearerToken("s3cret")).read("Patient", "p1")

    assert server.received[0].headers["Authorization"] == "Bearer s3cret"


class TokenEndpoint:
    """A fake OAuth token endpoint that issues numbered tokens and keeps the forms it got."""

    def __init__(self, expires_in: int = 300) -> None:
        self.forms: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []
        self.expires_in = expires_in

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        from urllib.parse import parse_qs

        self.forms.append(parse_qs(str(request.body)))
        self.headers.append(dict(request.headers))
        token = f"token-{len(self.forms)}"
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in})


def _ec_key(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@responses.activate
def test_smart_backend_token_is_renewed_after_a_401_and_the_request_retried_once(tmp_path: Path) -> None:
    tokens = TokenEndpoint()
    responses.add_callback(responses.POST, "https://auth.test/token", callback=tokens)

    def patient_endpoint(request: requests.PreparedRequest) -> Reply:
        if request.headers.get("Authorization") == "Bearer token-1":
            return fhir(outcome("token revoked", "login"), 401)
        return fhir(PATIENT)

    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=patient_endpoint)
    key = load_signing_key(_ec_key(tmp_path), kid="k1")
    auth = SmartBackendAuth("fhirtrd", key, "https://auth.test/token")

    assert make_client([], auth=auth).read("Patient", "p1")["id"] == "p1"

    assert auth.tokens_fetched == 2
    assertion = tokens.forms[0]["client_assertion"][0]
    import jwt

    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(assertion, key.key.public_key(), algorithms=["ES384"], audience="https://auth.test/token")
    assert header["alg"] == "ES384" and header["kid"] == "k1"
    assert claims["iss"] == claims["sub"] == "fhirtrd"
    assert claims["exp"] - claims["iat"] <= 300
    assert tokens.forms[0]["grant_type"] == ["client_credentials"]


@responses.activate
def test_a_401_that_persists_after_renewal_is_an_auth_error(tmp_path: Path) -> None:
    responses.add_callback(responses.POST, "https://auth.test/token", callback=TokenEndpoint())
    server = ScriptedServer([fhir(outcome("unknown client", "login"), 401)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)
    auth = SmartBackendAuth("fhirtrd", load_signing_key(_ec_key(tmp_path)), "https://auth.test/token")

    with pytest.raises(AuthError, match="unknown client"):
        make_client([], auth=auth).read("Patient", "p1")
    assert len(server.received) == 2


@responses.activate
def test_cached_token_is_renewed_shortly_before_it_expires(tmp_path: Path) -> None:
    tokens = TokenEndpoint(expires_in=300)
    responses.add_callback(responses.POST, "https://auth.test/token", callback=tokens)
    server = ScriptedServer([fhir(PATIENT)])
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=server)
    now = [1_000_000.0]
    auth = SmartBackendAuth("fhirtrd", load_signing_key(_ec_key(tmp_path)), "https://auth.test/token",
                            clock=lambda: now[0])
    client = make_client([], auth=auth)

    client.read("Patient", "p1")
    now[0] += 200  # well inside the token's lifetime: reused
    client.read("Patient", "p1")
    now[0] += 75  # 25 s left of 300: inside the 30 s renewal margin
    client.read("Patient", "p1")

    assert [r.headers["Authorization"] for r in server.received] == [
        "Bearer token-1", "Bearer token-1", "Bearer token-2"]


@pytest.mark.parametrize("method", ["basic", "post"])
@responses.activate
def test_client_secret_is_sent_the_configured_way(method: str) -> None:
    tokens = TokenEndpoint()
    responses.add_callback(responses.POST, "https://auth.test/token", callback=tokens)
    responses.add_callback(responses.GET, f"{BASE}/Patient/p1", callback=ScriptedServer([fhir(PATIENT)]))
    auth = ClientSecretAuth("fhirtrd", "pw", "https://auth.test/token", method=method)  # type: ignore[arg-type]

    make_client([], auth=auth).read("Patient", "p1")

    if method == "basic":
        assert tokens.headers[0]["Authorization"].startswith("Basic ")
        assert "client_secret" not in tokens.forms[0]
    else:
        assert tokens.forms[0]["client_secret"] == ["pw"]
        assert "Authorization" not in tokens.headers[0]


@responses.activate
def test_token_endpoint_refusal_names_the_oauth_error(tmp_path: Path) -> None:
    responses.add(responses.POST, "https://auth.test/token", status=401,
                  json={"error": "invalid_client", "error_description": "jti has already been used"})
    auth = SmartBackendAuth("fhirtrd", load_signing_key(_ec_key(tmp_path)), "https://auth.test/token")

    with pytest.raises(AuthError, match="invalid_client: jti has already been used"):
        make_client([], auth=auth).read("Patient", "p1")


def test_rate_limiter_spaces_requests_evenly() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()

    assert waits == [0.25, 0.5]


def test_capabilities_decide_conditional_writes_and_everything() -> None:
    statement = {
        "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "interaction": [{"code": "transaction"}, {"code": "batch"}],
                  "resource": [
                      {"type": "Patient", "operation": [{"name": "everything", "definition": "x"}],
                       "searchParam": [{"name": "_lastUpdated", "type": "date"}]},
                      {"type": "Flag", "conditionalUpdate": True, "conditionalCreate": True},
                      {"type": "Observation", "conditionalCreate": True}]}]}

    caps = ServerCapabilities.from_statement(statement)

    assert caps.transaction and caps.batch
    assert caps.supports_operation("Patient", "$everything")
    assert "Flag" in caps.conditional_update and "Observation" not in caps.conditional_update
    assert "Observation" in caps.conditional_create
    assert caps.supports_search_param("Patient", "_lastUpdated")
