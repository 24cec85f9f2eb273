"""`fhirtrd population-sync` batches under faults a real test server cannot be made to show on cue: a
batch lost to another writer (412), one entry refused (400), a committed batch whose answer is lost
(HTTP faked with `responses`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from fhirtrd.server.client import FhirClient, RetryPolicy, ServerCapabilities
from fhirtrd.server.popsync import PopulationSync, merge_plans
from fhirtrd.server.sync import FAILED, UNCHANGED, WRITTEN, SyncConfig

BASE = "https://ehr.example.org/fhir"
REPO_ROOT = Path(__file__).resolve().parents[2]
CAPS = ServerCapabilities(transaction=True, conditional_create=frozenset({"Observation", "Flag", "Device",
                                                                           "Provenance", "RiskAssessment"}))
Handler = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two assessed sample patients' contracts, from `fhirtrd population`."""
    out = tmp_path_factory.mktemp("population") / "out"
    subprocess.run([sys.executable, "-m", "fhirtrd", "population", str(REPO_ROOT / "samples"), "--out", str(out),
                    "--as-of", "2025-01-15"], check=True, capture_output=True, timeout=300)
    lines = [json.loads(line) for line in (out / "results.ndjson").read_text().splitlines()]
    return [c for c in lines if c["assessments"]][:2]


def _work() -> PopulationSync:
    client = FhirClient(BASE, retry=RetryPolicy(backoff=(0.0,)), sleep=lambda _: None)
    return PopulationSync(client, CAPS, SyncConfig(as_of=date(2025, 1, 15)), datetime(2026, 11, 24, tzinfo=UTC),
                          lambda _pid: [])


def _patients(bundle: dict[str, Any]) -> set[str]:
    """The patients whose outputs a transaction writes (by their business identifier)."""
    found = set()
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Device":
            continue  # the shared fhirtrd Device
        for ident in entry["resource"].get("identifier") or []:
            if ident.get("system") == "http://fhirtrd.org/fhir/identifier" and "/" in ident.get("value", ""):
                found.add(ident["value"].split("/", 1)[0])
    return found


def _ok(bundle: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    answer = {"resourceType": "Bundle", "type": "transaction-response",
              "entry": [{"response": {"status": "201 Created"}} for _ in bundle["entry"]]}
    return 200, {"Content-Type": "application/fhir+json"}, json.dumps(answer)


def _outcome(status: int, text: str) -> tuple[int, dict[str, str], str]:
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                         "diagnostics": text}]}
    return status, {"Content-Type": "application/fhir+json"}, json.dumps(oo)


def _empty_search(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []})


def _serve(post: Handler, get: Handler = _empty_search) -> None:
    responses.add_callback(responses.POST, BASE, callback=post)
    responses.add_callback(responses.GET, re.compile(rf"{re.escape(BASE)}/\w+\?.*"), callback=get)


@responses.activate
def test_a_batch_lost_to_another_writer_is_written_patient_by_patient(contracts: list[dict[str, Any]]) -> None:
    sent: list[dict[str, Any]] = []

    def post(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        bundle = json.loads(request.body or b"{}")
        sent.append(bundle)
        if len(sent) == 1:
            return _outcome(412, "version conflict: Flag/7 was changed by another writer")
        return _ok(bundle)

    _serve(post)
    work = _work()
    outcomes = work.write_batch(contracts)

    ids = [c["patient"].removeprefix("Patient/") for c in contracts]
    assert [(o.patient_id, o.status) for o in outcomes] == [(ids[0], WRITTEN), (ids[1], WRITTEN)]
    assert work.batches == 1 and work.refused == 1
    assert _patients(sent[0]) == set(ids)  # one transaction for both ...
    assert [_patients(b) for b in sent[1:]] == [{ids[0]}, {ids[1]}]  # ... then one each, after it was refused
    merged_urls = {e["fullUrl"] for e in sent[0]["entry"]}
    assert merged_urls == {e["fullUrl"] for b in sent[1:] for e in b["entry"]}  # nothing lost on the way
    reads = [c.request.url for c in responses.calls if c.request.method == "GET"]
    assert {parse_qs(urlparse(u or "").query)["patient"][0] for u in reads} == {f"Patient/{i}" for i in ids}


@responses.activate
def test_one_refused_entry_fails_its_patient_only(contracts: list[dict[str, Any]]) -> None:
    bad = contracts[1]["patient"].removeprefix("Patient/")

    def post(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        bundle = json.loads(request.body or b"{}")
        if bad in _patients(bundle):
            return _outcome(400, f"Bundle.entry[3]: Observation {bad}/trd/stage: code not in the server's ValueSet")
        return _ok(bundle)

    _serve(post)
    work = _work()
    first, second = work.write_batch(contracts)

    assert first.status == WRITTEN
    assert second.status == FAILED and second.patient_id == bad
    assert second.reason is not None and second.reason.startswith("HTTP 400 from POST")
    assert "code not in the server's ValueSet" in second.reason
    assert work.refused == 1


@responses.activate
def test_a_committed_batch_whose_answer_was_lost_is_not_written_again(contracts: list[dict[str, Any]]) -> None:
    stored: list[dict[str, Any]] = []
    posts: list[dict[str, Any]] = []

    def post(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        bundle = json.loads(request.body or b"{}")
        posts.append(bundle)
        if not stored:  # the server commits, then the connection drops before the answer
            for n, entry in enumerate(bundle["entry"]):
                stored.append({**entry["resource"], "id": f"r{n}", "meta": {
                    **entry["resource"].get("meta", {}), "versionId": "1"}})
        raise requests.ConnectionError("connection reset by peer")

    def get(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlparse(request.url or "").query)
        rtype = urlparse(request.url or "").path.rsplit("/", 1)[-1]
        pid = query["patient"][0].removeprefix("Patient/")
        found = [r for r in stored if r["resourceType"] == rtype
                 and any(i.get("value", "").startswith(f"{pid}/") for i in r.get("identifier") or [])]
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
        return 200, {}, json.dumps(bundle)

    _serve(post, get)
    work = _work()
    outcomes = work.write_batch(contracts)

    assert [o.status for o in outcomes] == [UNCHANGED, UNCHANGED]  # found on a fresh read, by content hash
    assert all(_patients(b) == {c["patient"].removeprefix("Patient/") for c in contracts} for b in posts)
    assert work.refused == 1


def test_merging_plans_sends_the_shared_device_once() -> None:
    device = {"fullUrl": "urn:uuid:device", "resource": {"resourceType": "Device"}, "request": {"method": "POST"}}
    one = {"entry": [device, {"fullUrl": "urn:uuid:a", "resource": {}, "request": {}}]}
    two = {"entry": [device, {"fullUrl": "urn:uuid:b", "resource": {}, "request": {}}]}
    assert [e["fullUrl"] for e in merge_plans([one, two])["entry"]] == ["urn:uuid:device", "urn:uuid:a",
                                                                        "urn:uuid:b"]
