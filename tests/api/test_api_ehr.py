"""Issue "The EHR-facing door": `fhirtrd serve`, CORS, cards and feedback as EHRs expect, trust per EHR."""

from __future__ import annotations

import ast
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from api_samples import (
    AS_OF,
    PATIENT_ID,
    SERVICE_URL,
    Signer,
    bipolar_condition,
    bundle,
    draft_order,
    hook_request,
    prefetch_for,
    two_failed_ssri_trials,
)

from fhirtrd.api.auth import JwtVerifier
from fhirtrd.api.config import load_settings
from fhirtrd.api.errors import Unauthorized
from fhirtrd.cli import main

REPO = Path(__file__).resolve().parents[2]
PV = "/cds-services/fhirtrd-patient-view"
SIGN = "/cds-services/fhirtrd-order-sign"
SANDBOX = "https://sandbox.cds-hooks.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def templates(app: Any) -> dict[str, str]:
    return app.extensions["fhirtrd"].templates


# --- 1. `fhirtrd serve` ------------------------------------------------------------------------


def test_fhirtrd_serve_answers_healthz_discovery_and_a_patient_view_call(tmp_path: Path) -> None:
    """The README's development command, run as a user runs it (a free port instead of 8080)."""
    port = free_port()
    (tmp_path / "fhirtrd.json").write_text(json.dumps({"as_of": AS_OF, "public_url": f"http://127.0.0.1:{port}"}))
    env = {**os.environ, "FHIRTRD_CONFIG": str(tmp_path / "fhirtrd.json")}
    fhirtrd = Path(sys.executable).parent / "fhirtrd"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(fhirtrd), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "fhirtrd serve did not start"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        services = requests.get(f"{base}/cds-services", timeout=10).json()["services"]
        assert {s["id"] for s in services} == {"fhirtrd-patient-view", "fhirtrd-order-select", "fhirtrd-order-sign"}
        body = hook_request("patient-view", {"patientId": PATIENT_ID},
                            prefetch_for(services[0]["prefetch"], two_failed_ssri_trials()))
        cards = requests.post(f"{base}{PV}", json=body, timeout=30).json()["cards"]
        assert cards[0]["summary"].startswith("Depression (MDD) stage I: 2 failed adequate trials")
        assert (tmp_path / "fhirtrd-feedback.sqlite").is_file()  # the default store, in the working directory
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def test_serve_with_a_bad_setting_names_it_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRTRD_")}
    done = subprocess.run([sys.executable, "-m", "fhirtrd", "serve", "--port", str(free_port())],
                          env={**env, "FHIRTRD_MAX_BODY_BYTES": "-1"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "max_body_bytes" in done.stderr


# --- 4. CORS -----------------------------------------------------------------------------------


def test_no_cors_headers_by_default(open_app: Any) -> None:
    r = open_app.test_client().get("/cds-services", headers={"Origin": SANDBOX})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_an_allowed_origin_gets_preflight_and_cors_headers(make_app: Any) -> None:
    client = make_app(cors_origins=[SANDBOX]).test_client()
    pre = client.options(PV, headers={"Origin": SANDBOX, "Access-Control-Request-Method": "POST",
                                      "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    r = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert r.headers["Access-Control-Allow-Origin"] == SANDBOX
    # an error answer carries the header too, so the browser can show it
    assert client.post(PV, json={}, headers={"Origin": SANDBOX}).headers["Access-Control-Allow-Origin"] == SANDBOX


def test_an_origin_off_the_allowlist_gets_no_cors_headers(make_app: Any) -> None:
    client = make_app(cors_origins=[SANDBOX]).test_client()
    pre = client.options(PV, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in pre.headers
    r = client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


# --- 5. cards and feedback as EHRs expect ------------------------------------------------------


def test_every_suggestion_says_whether_it_is_recommended(open_app: Any) -> None:
    for data in (two_failed_ssri_trials(), [*two_failed_ssri_trials(), bipolar_condition()]):
        body = hook_request("patient-view", {"patientId": PATIENT_ID}, prefetch_for(templates(open_app), data))
        cards = open_app.test_client().post(PV, json=body).json["cards"]
        suggestions = [s for c in cards for s in c.get("suggestions", [])]
        assert suggestions and all(isinstance(s["isRecommended"], bool) for s in suggestions)


def test_feedback_signed_with_aud_the_feedback_url_is_accepted(secured_app: Any, signer: Signer) -> None:
    """The CDS Hooks sandbox signs feedback with aud = the feedback endpoint's URL."""
    url = SERVICE_URL + PV + "/feedback"
    feedback = {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2024-03-01T10:00:00Z"}]}
    r = secured_app.test_client().post(PV + "/feedback", json=feedback,
                                       headers={"Authorization": f"Bearer {signer.token(url)}"})
    assert r.status_code == 200 and r.json == {"recorded": 1}


def test_feedback_report_counts_per_card_kind_outcome_and_reason(
        make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "fhirtrd-feedback.sqlite"  # the default file name, in the working directory
    app = make_app(feedback_path=str(store))
    client = app.test_client()
    pv = client.post(PV, json=hook_request("patient-view", {"patientId": PATIENT_ID},
                                           prefetch_for(templates(app), two_failed_ssri_trials()))).json["cards"][0]
    orders = bundle([draft_order("draft-1", "escitalopram", 5)])
    sign = client.post(SIGN, json=hook_request("order-sign", {"patientId": PATIENT_ID, "draftOrders": orders},
                                               prefetch_for(templates(app), two_failed_ssri_trials()))).json["cards"]
    items = [{"card": pv["uuid"], "outcome": "accepted", "outcomeTimestamp": "2024-03-01T10:00:00Z",
              "acceptedSuggestions": [{"id": pv["suggestions"][0]["uuid"]}]}]
    items += [{"card": c["uuid"], "outcome": "overridden", "outcomeTimestamp": "2024-03-01T10:01:00Z",
               "overrideReason": {"reason": {"code": "patient-preference", "system": "http://fhirtrd.org/fhir/CodeSystem/x"},
                                  "userComment": "wants to keep it"}} for c in sign]
    assert client.post(SIGN + "/feedback", json={"feedback": items}).status_code == 200
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.chdir(tmp_path)
    assert main(["feedback", "report"], out, err) == 0, err.getvalue()  # as docs/service.md shows it
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["card", "kind", "outcome", "reason", "count"]
    assert ["mdd-stage", "accepted", "-", "1"] in [line.split() for line in lines]
    kinds = {line.split()[0] for line in lines[1:] if line.startswith("order-")}
    assert kinds and all(k in {"order-class", "order-dose", "order-repeat", "order-bipolar"} for k in kinds)
    assert lines[-1] == f"{1 + len(sign)} feedback item(s): 1 accepted, {len(sign)} overridden"
    assert "wants to keep it" not in out.getvalue()


def test_feedback_report_without_a_store_says_so(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["feedback", "report", "--store", str(tmp_path / "none.sqlite")], io.StringIO(), err) == 1
    assert "no feedback file" in err.getvalue()


# --- 7. trust set-up per EHR -------------------------------------------------------------------

EPIC_SITES = ("https://fhir.hospital-a.example/api/FHIR/R4", "https://fhir.hospital-b.example/api/FHIR/R4")


def _verifier(issuers: list[dict[str, Any]]) -> JwtVerifier:
    return JwtVerifier(load_settings({"trusted_issuers": issuers, "public_url": SERVICE_URL}), requests.Session())


def test_epic_rs384_per_site_issuer_with_its_own_jwk_set() -> None:
    """Epic: each site signs with RS384 and `iss` = that site's FHIR base; keys at a per-site JWK Set URL."""
    keys = {site: Signer("RS384", kid="epic-" + site[8:16]) for site in EPIC_SITES}
    issuers = [{"issuer": site, "jwks_url": f"{site}/.well-known/jwks.json"} for site in EPIC_SITES]
    verifier = _verifier(issuers)
    with responses.RequestsMock() as fake:
        for site, key in keys.items():
            fake.get(f"{site}/.well-known/jwks.json", json=key.jwks)
        for site, key in keys.items():
            assert verifier.verify(key.token(SERVICE_URL + PV, iss=site), [SERVICE_URL + PV]).issuer == site
        a, b = EPIC_SITES
        with pytest.raises(Unauthorized):  # site B's key cannot speak for site A
            verifier.verify(keys[b].token(SERVICE_URL + PV, iss=a, headers={"kid": keys[a].kid}), [SERVICE_URL + PV])


def test_oracle_health_issuer_and_jwk_set_url() -> None:
    """Oracle Health (Cerner): one issuer, keys published at a configured JWK Set URL (kid chosen)."""
    issuer = "https://authorization.cerner.example/tenants/ec2458f2/oidc/idsps/cds"
    jwks_url = issuer + "/protocol/openid-connect/certs"
    current, old = Signer("RS384", kid="2024-2"), Signer("RS384", kid="2024-1")
    verifier = _verifier([{"issuer": issuer, "jwks_url": jwks_url}])
    with responses.RequestsMock() as fake:
        fake.get(jwks_url, json={"keys": old.jwks["keys"] + current.jwks["keys"]})
        assert verifier.verify(current.token(SERVICE_URL, iss=issuer), [SERVICE_URL]).issuer == issuer
        assert verifier.verify(old.token(SERVICE_URL, iss=issuer), [SERVICE_URL]).issuer == issuer


def test_cds_hooks_sandbox_es384_with_an_allowlisted_jku() -> None:
    """The CDS Hooks sandbox signs with ES384 and names its JWK Set in the `jku` header."""
    jku = SANDBOX + "/.well-known/jwks.json"
    sandbox = Signer("ES384", kid="sandbox-1")
    verifier = _verifier([{"issuer": SANDBOX, "jku": [jku]}])
    with responses.RequestsMock() as fake:
        fake.get(jku, json=sandbox.jwks)
        token = sandbox.token(SERVICE_URL + PV, iss=SANDBOX, headers={"jku": jku})
        assert verifier.verify(token, [SERVICE_URL + PV]).issuer == SANDBOX
        with pytest.raises(Unauthorized, match="not on the allowlist"):
            verifier.verify(sandbox.token(SERVICE_URL + PV, iss=SANDBOX, headers={"jku": "https://evil.example/jwks"}),
                            [SERVICE_URL + PV])


# --- 9. app.py only composes -------------------------------------------------------------------


def test_blueprints_never_import_the_module_that_registers_them() -> None:
    api = REPO / "fhirtrd" / "api"
    for module in sorted(api.glob("*.py")):
        if module.name in ("app.py", "__init__.py") or module.name.startswith("cli_"):
            continue  # the composition root, and the commands that start it
        tree = ast.parse(module.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & {"fhirtrd.api.app", "fhirtrd.api"}, module.name


def test_order_cards_offer_override_reasons_from_the_codesystem(open_app: Any) -> None:
    codesystem = json.loads((REPO / "mappings" / "fhir" / "CodeSystem-fhirtrd.json").read_text())
    group = {c["code"]: c["display"] for c in codesystem["concept"]
             if {"code": "group", "valueCode": "override-reasons"} in c.get("property", [])}
    assert {"response-documented-elsewhere", "different-indication", "patient-preference"} <= set(group)
    orders = bundle([draft_order("draft-1", "escitalopram", 5)])
    body = hook_request("order-sign", {"patientId": PATIENT_ID, "draftOrders": orders},
                        prefetch_for(templates(open_app), two_failed_ssri_trials()))
    cards = open_app.test_client().post(SIGN, json=body).json["cards"]
    assert cards
    for card in cards:
        reasons = card["overrideReasons"]
        assert {r["code"]: r["display"] for r in reasons} == group
        assert {r["system"] for r in reasons} == {codesystem["url"]}
