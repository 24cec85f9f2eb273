"""No PHI in any log: the samples and the real corpus through every door, the logs scanned.

Doors: the CLI (`classify`), REST (`POST /$classify`, both representations), CDS Hooks
(patient-view with the patient's data as prefetch, then feedback with a free-text comment naming
the patient) and the sync (`fhirtrd sync` in a subprocess against the real sekmet server). Every
fhirtrd log record is captured at DEBUG; the scan looks for every input Patient's names, birth
dates and identifier values.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fhirtrd import logs
from fhirtrd.api.prefetch import patient_of
from fhirtrd.cli import main
from fhirtrd.fhir.reader import ReadReport, input_files, read_path
from tests.sync.conftest import FhirServer, start_sekmet, stop_sekmet
from tests.sync.patients import post_bundle, read_bundle, stable_ids

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
REAL = REPO.parent / "shared" / "data" / "real-fhir"
AS_OF = "2025-01-15"
# Synthea transaction Bundles loaded into sekmet for the sync door (a few: loading is slow)
SYNC_BUNDLES = 4

pytestmark = [pytest.mark.server, pytest.mark.slow,
              pytest.mark.skipif(not REAL.is_dir(), reason="real corpus not present")]


def files() -> list[Path]:
    return sorted(input_files([SAMPLES, REAL], ReadReport()))


def file_resources(path: Path) -> list[dict[str, Any]]:
    return [e.resource for e in read_path(path, ReadReport())]


def phi_of(patients: list[dict[str, Any]]) -> set[str]:
    """Names, birth dates and identifier values of the inputs' patients (4 characters or more)."""
    found: set[str] = set()
    for p in patients:
        for name in p.get("name") or []:
            found.update(name.get("given") or [])
            found.update(v for v in (name.get("family"), name.get("text")) if isinstance(v, str))
        if isinstance(p.get("birthDate"), str):
            found.add(p["birthDate"])
        for ident in p.get("identifier") or []:
            if isinstance(ident.get("value"), str):
                found.add(ident["value"])
    return {v for v in found if isinstance(v, str) and len(v) >= 4}


def scan(text: str, phi: set[str]) -> list[str]:
    return sorted(v for v in phi if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text))


def by_patient(resources: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One file's resources per Patient: those that are about it, or about no patient we can tell."""
    for p in (r for r in resources if r.get("resourceType") == "Patient"):
        yield p, [r for r in resources if patient_of(r, None) in (p.get("id"), None)]


@pytest.fixture(scope="module")
def corpus() -> list[tuple[Path, list[dict[str, Any]]]]:
    return [(path, file_resources(path)) for path in files()]


@pytest.fixture(scope="module")
def phi(corpus: list[tuple[Path, list[dict[str, Any]]]]) -> set[str]:
    values = phi_of([r for _, resources in corpus for r in resources if r.get("resourceType") == "Patient"])
    assert len(values) > 500  # the scan has something to find
    return values


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    server = start_sekmet(tmp_path_factory.mktemp("sekmet-phi"))
    yield server
    stop_sekmet(server)


def test_the_scan_finds_phi_when_it_is_there(phi: set[str]) -> None:
    """The scanner itself: a line holding a birth date and a name is caught."""
    leaked = json.dumps({"event": "oops", "who": "Reyes", "born": "1980-04-02"})
    assert scan(leaked, phi | {"Reyes", "1980-04-02"}) == ["1980-04-02", "Reyes"]


def test_cli_logs_hold_no_phi(phi: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRTRD_LOG_LEVEL", "DEBUG")
    out, err = io.StringIO(), io.StringIO()
    code = main(["classify", str(SAMPLES), str(REAL), "--as-of", AS_OF, "--format", "json", "--no-progress"],
                out, err)
    assert code == 0, err.getvalue()[-500:]
    assert len(json.loads(out.getvalue())["results"]) > 290
    assert scan(err.getvalue(), phi) == []


def test_rest_and_cds_logs_hold_no_phi(corpus: list[tuple[Path, list[dict[str, Any]]]], phi: set[str],
                                       tmp_path: Path) -> None:
    from fhirtrd.api import create_app

    app = create_app({"as_of": AS_OF, "log_level": "DEBUG", "max_body_bytes": 64 * 1024 * 1024,
                      "feedback_path": str(tmp_path / "feedback.sqlite")})
    captured = io.StringIO()
    logs.configure("DEBUG", captured)
    client = app.test_client()
    templates = app.extensions["fhirtrd"].templates
    calls = cards = 0
    try:
        for path, resources in corpus:
            bundle = {"resourceType": "Bundle", "type": "collection",
                      "entry": [{"resource": r} for r in resources]}
            for accept in ("application/json", "application/fhir+json"):
                r = client.post("/$classify", json=bundle, headers={"Accept": accept})
                assert r.status_code == 200, (path.name, r.get_data(as_text=True)[:300])
            for patient, mine in by_patient(resources):
                prefetch: dict[str, Any] = {key: None for key in templates}
                prefetch["patient"] = patient
                prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
                    {"resource": r} for r in mine if r is not patient and r.get("resourceType") != "Patient"]}
                body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                        "context": {"patientId": patient["id"], "userId": "Practitioner/x"}, "prefetch": prefetch}
                r = client.post("/cds-services/fhirtrd-patient-view", json=body)
                assert r.status_code == 200, (path.name, r.get_data(as_text=True)[:300])
                calls += 1
                for card in r.json["cards"]:
                    cards += 1
                    name = " ".join(phi_of([patient])) or "the patient"
                    feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                                              "outcomeTimestamp": "2025-01-15T10:00:00Z",
                                              "overrideReason": {"userComment": f"{name} prefers therapy"}}]}
                    assert client.post("/cds-services/fhirtrd-patient-view/feedback",
                                       json=feedback).status_code == 200
    finally:
        logs.configure("INFO")
    text = captured.getvalue()
    assert calls > 290 and cards > 0 and text.count("\n") > calls
    assert scan(text, phi) == []


def test_sync_logs_hold_no_phi(sekmet: FhirServer, phi: set[str], tmp_path: Path) -> None:
    session = requests.Session()
    for path in sorted(SAMPLES.glob("*.json")):
        entries = list(read_path(path, ReadReport()))
        post_bundle(session, sekmet.base_url, {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": e.full_url, "resource": e.resource,
             "request": {"method": "PUT", "url": f"{e.resource['resourceType']}/{e.resource['id']}"}}
            for e in entries]})
    folder = REAL / "synthea-2019-smart-generated-sample-data"
    for info in sorted(folder.glob("*Information*.json.gz")):
        post_bundle(session, sekmet.base_url, read_bundle(info))
    for path in sorted(p for p in folder.glob("*.json.gz") if "Information" not in p.name)[:SYNC_BUNDLES]:
        post_bundle(session, sekmet.base_url, stable_ids(read_bundle(path)))
    env = {**os.environ, "FHIRTRD_LOG_LEVEL": "DEBUG"}
    done = subprocess.run(
        [sys.executable, "-m", "fhirtrd", "sync", "--server", sekmet.base_url, "--all", "--as-of", AS_OF,
         "--state", str(tmp_path / "state.json")],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-1000:]
    assert "written" in done.stderr
    assert scan(done.stderr, phi) == []
