"""The Bulk Data client under faults a real server shows: 429/503 while polling, a cut download, a
refused `_typeFilter`, an export that ends with errors (HTTP faked with `responses`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

from fhirtrd.server.bulk import BulkExport, ExportRequest, default_request
from fhirtrd.server.client import FhirClient
from fhirtrd.server.errors import ResponseError
from fhirtrd.terminology import load_terminology

BASE = "https://ehr.example.org/fhir"
STATUS = f"{BASE}/bulk-status/job1"
FILE = f"{BASE}/files/Condition.ndjson"
LINES = b"".join(json.dumps({"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/p"}}
                            ).encode() + b"\n" for i in range(200))


def _manifest(**extra: object) -> dict[str, object]:
    return {"transactionTime": "2026-11-24T10:00:00Z", "request": f"{BASE}/$export", "requiresAccessToken": False,
            "output": [{"type": "Condition", "url": FILE, "count": 200}], "error": [], **extra}


def _export(tmp_path: Path, sleeps: list[float], progress: list[str]) -> BulkExport:
    client = FhirClient(BASE, sleep=sleeps.append)
    return BulkExport(client, tmp_path, max_wait=30.0, progress=progress.append)


@responses.activate
def test_polling_honours_retry_after_capped_and_shows_x_progress(tmp_path: Path) -> None:
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=429, headers={"Retry-After": "7"})
    responses.get(STATUS, status=202, headers={"X-Progress": "50% of Observations", "Retry-After": "3"})
    responses.get(STATUS, status=503, headers={"Retry-After": "500"})
    responses.get(STATUS, json=_manifest())
    responses.get(FILE, body=LINES)
    responses.delete(STATUS, status=202)
    sleeps: list[float] = []
    progress: list[str] = []

    report = _export(tmp_path, sleeps, progress).run(ExportRequest())

    assert sleeps == [7.0, 3.0, 30.0]  # the server's waits, 500 s capped at max_wait
    assert "50% of Observations" in progress
    assert (tmp_path / "Condition.000.ndjson").read_bytes() == LINES
    assert report.deleted_job and report.transaction_time == "2026-11-24T10:00:00Z"
    assert json.loads((tmp_path / "manifest.json").read_text())["output"][0]["count"] == 200
    assert responses.calls[-1].request.method == "DELETE"


@responses.activate
def test_a_download_cut_in_the_middle_is_resumed_with_a_range_request(tmp_path: Path) -> None:
    cut = len(LINES) // 2 + 17  # in the middle of a line
    responses.get(FILE, body=LINES[:cut])
    responses.get(FILE, status=206, body=LINES[cut:],
                  match=[responses.matchers.header_matcher({"Range": f"bytes={cut}-"})])
    sleeps: list[float] = []
    export = _export(tmp_path, sleeps, [])

    size = export.download(FILE, tmp_path / "Condition.000.ndjson", requires_token=False)

    assert size == len(LINES)
    assert (tmp_path / "Condition.000.ndjson").read_bytes() == LINES
    assert export.report.download_retries == 1 and not (tmp_path / "Condition.000.ndjson.part").exists()


@responses.activate
def test_a_server_that_ignores_range_sends_the_whole_file_again_and_nothing_is_doubled(tmp_path: Path) -> None:
    responses.get(FILE, body=LINES[:1000])
    responses.get(FILE, body=LINES)  # 200, not 206: start over
    export = _export(tmp_path, [], [])
    export.download(FILE, tmp_path / "c.ndjson", requires_token=False)
    assert (tmp_path / "c.ndjson").read_bytes() == LINES


@responses.activate
def test_a_refused_type_filter_is_dropped_and_said_so(tmp_path: Path) -> None:
    refused = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "_typeFilter not supported"}]}
    responses.get(f"{BASE}/Patient/$export", status=400, json=refused,
                  match=[responses.matchers.header_matcher({"Prefer": "respond-async, handling=strict"})])
    responses.get(f"{BASE}/Patient/$export", status=202, headers={"Content-Location": STATUS},
                  match=[responses.matchers.header_matcher({"Prefer": "respond-async"})])
    request = default_request(load_terminology(), "patient", None, "2026-01-01T00:00:00Z")
    export = _export(tmp_path, [], [])

    assert export.kick_off(request) == STATUS
    assert "refused" in export.report.type_filter
    first, second = responses.calls[0].request.url, responses.calls[1].request.url
    assert "_typeFilter" in str(first) and "_typeFilter" not in str(second)
    assert "_since=2026-01-01" in str(second) and "_type=" in str(second)
    assert "Immunization" not in str(second) and "MedicationRequest" in str(second) and "Encounter" in str(second)


@responses.activate
def test_error_and_deleted_files_are_kept_and_reported(tmp_path: Path) -> None:
    errors = f"{BASE}/files/errors.ndjson"
    deleted = f"{BASE}/files/deleted.ndjson"
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                              "diagnostics": "Observation/o9 could not be read"}]}
    tombstones = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"request": {"method": "DELETE", "url": "Condition/c1"}}]}
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, json=_manifest(error=[{"type": "OperationOutcome", "url": errors}],
                                         deleted=[{"type": "Bundle", "url": deleted}]))
    responses.get(FILE, body=LINES)
    responses.get(errors, body=json.dumps(outcome) + "\n")
    responses.get(deleted, body=json.dumps(tombstones) + "\n")
    responses.delete(STATUS, status=202)

    report = _export(tmp_path, [], []).run(ExportRequest())

    assert report.errors == ["Observation/o9 could not be read"]
    assert report.files["deleted"] == ["deleted/Bundle.000.ndjson"]
    assert json.loads((tmp_path / "deleted" / "Bundle.000.ndjson").read_text())["entry"][0]["request"]["url"] == \
        "Condition/c1"
    state = json.loads((tmp_path / "export-state.json").read_text())
    assert state["transactionTime"] == "2026-11-24T10:00:00Z"  # the next --incremental starts here


@responses.activate
def test_an_export_the_server_reports_failed_is_an_error_naming_the_server_reason(tmp_path: Path) -> None:
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS})
    responses.get(STATUS, status=500, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "fatal", "code": "exception", "diagnostics": "export job crashed"}]})
    from fhirtrd.server.errors import ResponseError

    with pytest.raises(ResponseError, match="export job crashed"):
        _export(tmp_path, [], []).run(ExportRequest())


def test_an_interrupted_export_resumes_its_job_and_keeps_finished_files(tmp_path: Path) -> None:
    other = f"{BASE}/files/Patient.ndjson"
    patients = b'{"resourceType":"Patient","id":"p"}\n'
    manifest = _manifest(output=[{"type": "Patient", "url": other}, {"type": "Condition", "url": FILE}])
    with responses.RequestsMock() as first:
        first.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS})
        first.get(STATUS, json=manifest)
        first.get(other, body=patients)
        for _ in range(3):
            first.get(FILE, status=500)
        export = BulkExport(FhirClient(BASE, sleep=lambda s: None), tmp_path, retries=2)
        from fhirtrd.server.errors import ResponseError
        with pytest.raises(ResponseError):
            export.run(ExportRequest())
    with responses.RequestsMock() as second:  # no kick-off registered: a new job would fail the test
        second.get(STATUS, json=manifest)
        second.get(FILE, body=LINES)
        second.delete(STATUS, status=202)
        report = BulkExport(FhirClient(BASE, sleep=lambda s: None), tmp_path).run(ExportRequest())
        assert [c.request.url for c in second.calls][:2] == [STATUS, FILE]  # Patient file not fetched again
    assert report.files["output"] == ["Patient.000.ndjson", "Condition.001.ndjson"]
    assert (tmp_path / "Condition.001.ndjson").read_bytes() == LINES


HAPI_0512 = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics":
             "HAPI-0512: Resource types [Medication] are invalid for this type of export, as they do not contain "
             "search parameters that refer to patients."}]}


@responses.activate
def test_a_group_export_refusing_medication_is_asked_again_without_it_and_a_404_delete_is_no_error(
        tmp_path: Path) -> None:
    """HAPI FHIR: Medication refused at group level (400 HAPI-0512); DELETE of a completed job 404."""
    group = f"{BASE}/Group/g1/$export"
    responses.get(group, status=400, json=HAPI_0512,
                  match=[responses.matchers.query_param_matcher({"_type": "Condition,Medication"}, strict_match=False)])
    responses.get(group, status=202, headers={"Content-Location": STATUS},
                  match=[responses.matchers.query_param_matcher({"_type": "Condition"}, strict_match=False)])
    responses.get(STATUS, json=_manifest())
    responses.get(FILE, body=LINES)
    responses.delete(STATUS, status=404, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "not-found", "diagnostics": "Job instance <job1> was already cancelled or has "
                                                                   "completed"}]})

    report = _export(tmp_path, [], []).run(ExportRequest(level="group", group="g1", types=("Condition", "Medication")))

    assert report.types_refused == ["Medication"]
    assert report.job_gone and not report.deleted_job and report.errors == []
    assert (tmp_path / "Condition.000.ndjson").read_bytes() == LINES


@responses.activate
def test_a_system_export_refusing_medication_fails_with_the_servers_words(tmp_path: Path) -> None:
    """Only patient and group exports drop Medication: a system export that refuses it is an error."""
    responses.get(f"{BASE}/$export", status=400, json=HAPI_0512)

    with pytest.raises(ResponseError, match="HAPI-0512"):
        _export(tmp_path, [], []).run(ExportRequest(types=("Condition", "Medication")))
    assert len(responses.calls) == 1
