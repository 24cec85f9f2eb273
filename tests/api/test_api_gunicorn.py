"""The production entry point on a real socket: gunicorn with docker/gunicorn.conf.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from api_samples import (
    AS_OF,
    EHR_ISSUER,
    PATIENT_ID,
    SERVICE_URL,
    Signer,
    bundle,
    hook_request,
    prefetch_for,
    two_failed_ssri_trials,
)

from fhirtrd.api.config import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO_ROOT / "docker" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gunicorn_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the gunicorn fixture's stderr (gunicorn's and fhirtrd's records) goes."""
    return tmp_path_factory.mktemp("gunicorn-log") / "stderr.log"


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory, signer: Signer, gunicorn_log: Path) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    config = {
        "public_url": SERVICE_URL, "as_of": AS_OF, "rest_auth": True, "cds_auth": True,
        "api_keys": ["socket-key"], "jti_cache_path": str(tmp / "jti.sqlite"),
        "trusted_issuers": [{"issuer": EHR_ISSUER, "jwks": signer.jwks}],
        "feedback_path": str(tmp / "feedback.sqlite"), "log_level": "DEBUG",
    }
    (tmp / "fhirtrd.json").write_text(json.dumps(config))
    port = free_port()
    env = {**os.environ, "FHIRTRD_CONFIG": str(tmp / "fhirtrd.json"), "GUNICORN_WORKERS": "2"}
    log_file = gunicorn_log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind",
         f"127.0.0.1:{port}", "fhirtrd.api:create_app()"],
        env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log_file,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {gunicorn_log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def test_gunicorn_serves_rest_and_cds_over_a_socket(gunicorn: str, signer: Signer) -> None:
    r = requests.post(f"{gunicorn}/$classify", data=json.dumps(bundle(two_failed_ssri_trials())),
                      headers={"Content-Type": "application/fhir+json",
                               "Authorization": "Bearer socket-key"}, timeout=10)
    assert r.status_code == 200
    assert r.json()["results"][0]["assessments"][0]["failed_adequate_trials"] == 2

    templates = requests.get(
        f"{gunicorn}/cds-services", timeout=10,
        headers={"Authorization": f"Bearer {signer.token(SERVICE_URL + '/cds-services')}"},
    ).json()["services"][0]["prefetch"]
    body = hook_request("patient-view", {"patientId": PATIENT_ID},
                        prefetch_for(templates, two_failed_ssri_trials()))
    token = signer.token(SERVICE_URL + "/cds-services/fhirtrd-patient-view")
    statuses = []
    for _ in range(4):  # the same token again and again: whichever worker answers, only once
        r = requests.post(f"{gunicorn}/cds-services/fhirtrd-patient-view", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
        statuses.append(r.status_code)
        if r.status_code == 200:
            assert r.json()["cards"][0]["indicator"] == "info"
    assert statuses == [200, 401, 401, 401]


def test_unauthenticated_request_is_refused_over_the_socket(gunicorn: str) -> None:
    r = requests.post(f"{gunicorn}/$classify", data="{}", timeout=10,
                      headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/fhir+json"


def test_docker_production_config_switches_auth_on() -> None:
    path = REPO_ROOT / "docker" / "fhirtrd.production.yaml"
    settings = load_settings(None, {"FHIRTRD_CONFIG": str(path)})
    assert settings.cds_auth and settings.rest_auth
    assert settings.jti_cache_path
    assert all(i.jku or i.jwks_url or i.jwks for i in settings.trusted_issuers)


def test_compose_runs_the_same_app_factory_under_gunicorn() -> None:
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    assert '"fhirtrd.api:create_app()"' in dockerfile and "gunicorn.conf.py" in dockerfile
    compose: Any = yaml.safe_load((REPO_ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert services["hapi"]["image"].startswith("hapiproject/hapi")
    assert services["fhirtrd"]["environment"]["FHIRTRD_FHIR_BASE_URL"] == "http://hapi:8080/fhir"
    assert services["fhirtrd"]["build"]["dockerfile"] == "docker/Dockerfile"


def _chunks(total: int) -> Iterator[bytes]:
    """A JSON Bundle of about `total` bytes, sent without Content-Length (chunked)."""
    yield b'{"resourceType": "Bundle", "entry": ['
    chunk = b'{"resource": {"resourceType": "Basic", "id": "x"}},' * 2000
    for _ in range(total // len(chunk) + 1):
        yield chunk
    yield b'{"resource": {"resourceType": "Basic", "id": "x"}}]}'


def test_a_chunked_body_over_the_limit_is_a_413_over_the_socket(gunicorn: str) -> None:
    headers = {"Content-Type": "application/fhir+json", "Authorization": "Bearer socket-key"}
    for _ in range(2):  # and the connection is still usable afterwards
        r = requests.post(f"{gunicorn}/$classify", data=_chunks(11 * 1024 * 1024), headers=headers, timeout=60)
        assert r.status_code == 413, r.text[:300]
        assert r.json()["issue"][0]["code"] == "too-costly"
        assert "10485760 bytes" in r.json()["issue"][0]["diagnostics"]
    r = requests.post(f"{gunicorn}/$classify", data=_chunks(100_000), headers=headers, timeout=60)
    assert r.status_code == 200  # a chunked body under the limit is read whole


def test_fhirtrd_records_reach_stderr_under_gunicorn_as_json_lines(
        gunicorn: str, gunicorn_log: Path, signer: Signer) -> None:
    token = signer.token(SERVICE_URL + "/cds-services/fhirtrd-patient-view")
    body = hook_request("patient-view", {"patientId": PATIENT_ID}, {"patient": None})
    assert requests.post(f"{gunicorn}/cds-services/fhirtrd-patient-view", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).status_code == 412
    token = signer.token(SERVICE_URL + "/cds-services/fhirtrd-patient-view/feedback")
    feedback = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2024-03-01T10:00:00Z",
                              "overrideReason": {"userComment": "Free text about Mrs Example"}}]}
    assert requests.post(f"{gunicorn}/cds-services/fhirtrd-patient-view/feedback", json=feedback, timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in gunicorn_log.read_text().splitlines() if line.startswith("{")]
        if any(r["event"] == "cds feedback stored" for r in records):
            break
        time.sleep(0.2)
    events = {r["event"]: r for r in records}
    assert events["fhirtrd service ready"]["level"] == "INFO"
    assert events["cds feedback stored"]["logger"] == "fhirtrd.api.cds"
    assert events["cds feedback stored"]["items"] == 1
    assert "Mrs Example" not in gunicorn_log.read_text()


def test_gunicorn_refuses_two_workers_without_a_shared_replay_cache(tmp_path: Path, signer: Signer) -> None:
    config = {"cds_auth": True, "trusted_issuers": [{"issuer": EHR_ISSUER, "jwks": signer.jwks}],
              "feedback_path": str(tmp_path / "feedback.sqlite")}
    (tmp_path / "fhirtrd.json").write_text(json.dumps(config))
    env = {**os.environ, "FHIRTRD_CONFIG": str(tmp_path / "fhirtrd.json"), "GUNICORN_WORKERS": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{free_port()}",
         "fhirtrd.api:create_app()"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "jti_cache_path" in done.stderr and "2 worker processes" in done.stderr
