"""`fhirtrd export` against a real FHIR server's `$export` (sekmet, HAPI on loopback), then `fhirtrd population`
on what it downloaded: the same assessments as the sample files, incremental and Group exports.

sekmet is started for this module alone; HAPI is the session's server (tests/conftest.py), which
other tests' patients share, so on HAPI the sample patients' assessments are the ones compared.
HAPI answers every poll with `Retry-After: 120`, so the exports here pass `--max-wait 2`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fhirtrd.cli import main
from tests.conftest import SessionServers
from tests.sync.conftest import FhirServer, start_sekmet, stop_sekmet

pytestmark = pytest.mark.server

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"
AS_OF = "2025-01-15"
HEART_RATE = {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}


def _sample_resources(path: Path, n: int) -> list[dict[str, Any]]:
    """A sample's resources with ids made unique across samples (references rewritten to match)."""
    entries = json.loads(path.read_text())["entry"]
    resources = [e["resource"] for e in entries]
    pid = f"s{n}"  # a short prefix: ids stay within FHIR's 64 characters
    text = json.dumps(resources)
    for e in entries:  # urn:uuid references become Type/id, as a server stores them
        r = e["resource"]
        new = r["id"] if r["resourceType"] == "Patient" else f"{pid}-{r['id']}"
        if str(e.get("fullUrl", "")).startswith("urn:uuid:"):
            text = text.replace(f'"{e["fullUrl"]}"', f'"{r["resourceType"]}/{new}"')
    for r in resources:
        if r["resourceType"] != "Patient":
            text = text.replace(f'"{r["resourceType"]}/{r["id"]}"', f'"{r["resourceType"]}/{pid}-{r["id"]}"')
    out = json.loads(text)
    for r in out:
        if r["resourceType"] != "Patient":
            r["id"] = f"{pid}-{r['id']}"
    return out


def _put_all(server: FhirServer, resources: list[dict[str, Any]]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                        for r in resources]}
    response = server.session().post(server.base_url, json=bundle, timeout=120,
                                     headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text[:500]


def _hospital() -> list[dict[str, Any]]:
    resources = [r for n, p in enumerate(sorted(SAMPLES.glob("*.json"))) for r in _sample_resources(p, n)]
    # What a hospital also holds: an immunization and a heart rate, which the classifier never reads.
    resources += [{"resourceType": "Immunization", "id": "imm-1", "status": "completed",
                   "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
                   "patient": {"reference": "Patient/p-stage2"}, "occurrenceDateTime": "2024-05-01"},
                  {"resourceType": "Observation", "id": "hr-1", "status": "final", "code": HEART_RATE,
                   "subject": {"reference": "Patient/p-stage2"}, "effectiveDateTime": "2024-05-01",
                   "valueQuantity": {"value": 72, "unit": "/min"}}]
    return resources


SAMPLE_PATIENTS = {r["id"] for r in _hospital() if r["resourceType"] == "Patient"}


@pytest.fixture(scope="module", params=["sekmet", "hapi"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           session_servers: SessionServers) -> Iterator[FhirServer]:
    if request.param == "hapi":
        srv = session_servers.get("hapi")
        _put_all(srv, _hospital())
        yield srv
        return
    srv = start_sekmet(tmp_path_factory.mktemp("sekmet-bulk"))
    try:
        _put_all(srv, _hospital())
        yield srv
    finally:
        stop_sekmet(srv)


def _export(server: FhirServer, out: Path, *extra: str) -> tuple[int, str, str]:
    return _run("export", "--server", server.base_url, "--out", str(out), "--max-wait", "2", *extra)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def _assessments(results: list[dict[str, Any]]) -> set[tuple[str, str, str, str, bool]]:
    return {(r["patient"], a["disorder"], a["stage"], a["status"], a["treatment_resistant"])
            for r in results for a in r["assessments"]}


def _lines(directory: Path, rtype: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(directory.glob(f"{rtype}.*.ndjson")) for line in f.read_text().splitlines()]


def test_export_then_population_gives_the_assessments_of_the_sample_files(server: FhirServer, tmp_path: Path) -> None:
    code, out, err = _export(server, tmp_path / "export")
    assert code == 0, err
    report = json.loads(out)
    export = tmp_path / "export"

    assert report["type_filter"] == "applied by the server" and report["errors"] == []
    assert not list(export.glob("Immunization.*"))  # _type: only what the classifier reads
    codes = {c["code"] for o in _lines(export, "Observation") for c in o["code"]["coding"]}
    assert "8867-4" not in codes and codes  # _typeFilter: only the Observation codes in mappings/
    assert {p["id"] for p in _lines(export, "Patient")} >= {"p-stage2", "p-trsad"}
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["transactionTime"] == report["transactionTime"]
    if server.kind == "hapi":  # HAPI refuses to delete a completed job; its files expire on their own
        assert report["job_gone"] and not report["job_deleted"]
    else:
        assert report["job_deleted"]
        assert requests.get(report["status_url"], timeout=10).status_code == 404  # the job was deleted

    code, _, err = _run("population", str(export), "--out", str(tmp_path / "pop"), "--as-of", AS_OF)
    assert code == 0, err
    from_export = [r for line in (tmp_path / "pop" / "results.ndjson").read_text().splitlines()
                   if str((r := json.loads(line))["patient"]).removeprefix("Patient/") in SAMPLE_PATIENTS]  # HAPI: other tests' patients too
    code, out, _ = _run("classify", str(SAMPLES), "--as-of", AS_OF, "--format", "json")
    from_files = json.loads(out)["results"]
    assert _assessments(from_export) == _assessments(from_files)
    assert any(a[4] for a in _assessments(from_export))  # the treatment-resistant patients are found


def test_incremental_export_brings_only_what_changed_since_the_last_transaction_time(
        server: FhirServer, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert _export(server, out)[0] == 0
    changed = {"resourceType": "Condition", "id": "p-remission-late-sad", "clinicalStatus": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "25501002", "display": "Social phobia"}]},
        "subject": {"reference": "Patient/p-remission"}, "onsetDateTime": "2024-11-01"}
    _put_all(server, [changed])

    code, report_text, err = _export(server, out, "--incremental")

    assert code == 0, err
    assert [c["id"] for c in _lines(out, "Condition")] == ["p-remission-late-sad"]
    assert not _lines(out, "MedicationRequest")  # nothing else changed


def test_group_export_brings_only_the_members(server: FhirServer, tmp_path: Path) -> None:
    _put_all(server, [{"resourceType": "Group", "id": "trd-clinic", "type": "person", "actual": True,
                       "member": [{"entity": {"reference": "Patient/p-trsad"}}]}])
    code, out, err = _export(server, tmp_path, "--group", "trd-clinic")
    assert code == 0, err
    # HAPI refuses Medication (outside the Patient compartment) at group level: asked again without it
    assert json.loads(out)["types_refused"] == (["Medication"] if server.kind == "hapi" else [])
    subjects = {r.get("subject", r.get("patient", {})).get("reference") for f in tmp_path.glob("*.ndjson")
                for r in map(json.loads, f.read_text().splitlines()) if r["resourceType"] != "Patient"}
    assert subjects == {"Patient/p-trsad"}


from tests.sync.conftest import SmartSetup, smart_server  # noqa: E402,F401  (the SMART-only server fixture)


def test_export_authenticates_with_smart_backend_services(smart_server: SmartSetup, tmp_path: Path) -> None:  # noqa: F811
    setup = smart_server
    code, _, err = _run("export", "--server", setup.server.base_url, "--out", str(tmp_path / "open"))
    assert code == 1 and ("401" in err or "403" in err)  # no token, no export

    code, out, err = _run("export", "--server", setup.server.base_url, "--out", str(tmp_path / "smart"),
                          "--auth", "smart", "--client-id", setup.client_id, "--key", str(setup.key_path),
                          "--token-url", setup.token_url)
    assert code == 0, err
    report = json.loads(out)
    assert report["job_deleted"], report["errors"]
    assert (tmp_path / "smart" / "manifest.json").exists()
