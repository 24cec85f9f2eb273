"""HealthChain's CDS client (PyPI healthchain, in its own virtualenv) drives the service over a socket.

The service runs as `fhirtrd serve` on a free loopback port; HealthChain's client reads discovery,
sends a patient-view with prefetch, and its pydantic models parse the cards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from api_samples import AS_OF, PATIENT_ID, prefetch_for, two_failed_ssri_trials

from tests.sync.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "healthchain_driver.py"


def healthchain_python() -> Path:
    python = Path(os.environ.get("FHIRTRD_HEALTHCHAIN_PYTHON", REPO_ROOT / ".venv-healthchain" / "bin" / "python"))
    if not python.exists():
        pytest.skip(f"HealthChain is not installed: no {python} (run .ci/healthchain.sh)")
    return python


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("healthchain-serve")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp / "fhirtrd.json").write_text(json.dumps({
        "public_url": base, "as_of": AS_OF, "feedback_path": str(tmp / "feedback.sqlite")}))
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhirtrd", "serve", "--port", str(port)],
        env={**os.environ, "FHIRTRD_CONFIG": str(tmp / "fhirtrd.json")}, cwd=tmp,
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fhirtrd serve did not start: {(tmp / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_healthchain_client_reads_discovery_calls_patient_view_and_parses_the_cards(
        served: str, tmp_path: Path) -> None:
    python = healthchain_python()
    templates = requests.get(f"{served}/cds-services", timeout=10).json()["services"][0]["prefetch"]
    prefetch = tmp_path / "prefetch.json"
    prefetch.write_text(json.dumps(prefetch_for(templates, two_failed_ssri_trials())))
    run = subprocess.run([str(python), str(DRIVER), served, str(prefetch), PATIENT_ID],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])

    # discovery, as HealthChain's CDSServiceInformation read it
    hooks = {s["id"]: s["hook"] for s in out["services"]}
    assert hooks == {"fhirtrd-patient-view": "patient-view", "fhirtrd-order-select": "order-select",
                     "fhirtrd-order-sign": "order-sign"}
    prefetch_keys = {s["id"]: set(s["prefetch"]) for s in out["services"]}
    assert prefetch_keys["fhirtrd-patient-view"] == set(templates)
    assert prefetch_keys["fhirtrd-order-sign"] == set(templates) - {"fhirtrdObservations", "fhirtrdFlags"}

    # the patient-view answer, as HealthChain's Card / Suggestion / Action models parsed it
    [card] = out["response"]["cards"]
    assert card["summary"].startswith("Depression (MDD) stage I: 2 failed adequate trials")
    assert card["indicator"] == "info" and card["source"]["label"]
    [suggestion] = card["suggestions"]
    assert suggestion["isRecommended"] is False
    kinds = {(a["type"], a["resource"]["resourceType"]) for a in suggestion["actions"]}
    assert kinds == {("create", "Observation"), ("create", "Flag")}
