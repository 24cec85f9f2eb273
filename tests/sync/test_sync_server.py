"""Sync against a real FHIR R4 server (sekmet-fhir): outputs, idempotence, --since, resume, conflicts."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from fhirtrd.server.client import FhirClient, RetryPolicy
from fhirtrd.server.fetch import output_tag_param
from fhirtrd.server.selection import Selection
from fhirtrd.server.state import SyncState, fhir_instant, parse_instant
from fhirtrd.server.sync import RunReport, SyncConfig, run_sync
from fhirtrd.terminology import Terminology, load_terminology

from .conftest import SHARED, FhirServer
from .patients import (
    BUPROPION,
    SERTRALINE,
    failed_trial,
    mdd_patient,
    medication_statement,
    patient,
    post_bundle,
    read_bundle,
    stable_ids,
    transaction,
)

pytestmark = pytest.mark.server
AS_OF = date(2024, 6, 1)
IDENT = "http://fhirtrd.org/fhir/identifier"
LOW_DOSE_BUPROPION = ("bupropion", "42347", 150)


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return load_terminology()


def sync(server: FhirServer, selection: Selection, terminology: Terminology, state: SyncState | None = None,
         **config: Any) -> RunReport:
    client = FhirClient(server.base_url, retry=RetryPolicy(backoff=(0.1, 0.2)))
    return run_sync(client, selection, terminology, SyncConfig(as_of=AS_OF, **config), state=state)


def outputs(server: FhirServer, pid: str) -> list[dict[str, Any]]:
    """fhirtrd's outputs for a patient, read straight from the server (not through fhirtrd)."""
    found = []
    types = ("Observation", "Flag") + (("RiskAssessment",) if server.searches_risk_assessment else ())
    for rtype in types:  # sekmet cannot search RiskAssessment by patient, so fhirtrd writes none there
        r = requests.get(f"{server.base_url}/{rtype}", params={
            "patient": f"Patient/{pid}", "_tag": output_tag_param(), "_count": "500"}, timeout=30)
        r.raise_for_status()
        found += [e["resource"] for e in r.json().get("entry", []) if e.get("search", {}).get("mode") == "match"]
    return found


def ident(resource: dict[str, Any]) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == IDENT)


def by_ident(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {ident(r): r for r in resources}


def stage_of(assessment: dict[str, Any]) -> str:
    """The stage is the assessment Observation's value (a fhirtrd CodeSystem code)."""
    return str(assessment["valueCodeableConcept"]["coding"][0]["code"])


def load(server: FhirServer, resources: list[dict[str, Any]]) -> None:
    post_bundle(requests.Session(), server.base_url, transaction(resources))


def before_change(pid: str) -> list[dict[str, Any]]:
    """MDD, one failed sertraline trial and bupropion below its minimum dose: stage I, inadequate-dose flag."""
    return mdd_patient(pid, [SERTRALINE]) + [medication_statement(pid, 5, LOW_DOSE_BUPROPION, date(2023, 5, 1), 10)]


def test_first_sync_writes_stages_and_flags_and_a_second_changes_nothing(
        fhir_server: FhirServer, terminology: Terminology, tmp_path: Path) -> None:
    load(fhir_server, before_change("first-a"))
    load(fhir_server, mdd_patient("first-b", [SERTRALINE, BUPROPION]))
    load(fhir_server, [patient("first-c")])
    group = {"resourceType": "Group", "id": "first-cohort", "type": "person", "actual": True,
             "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("first-a", "first-b", "first-c")]}
    load(fhir_server, [group])

    first = sync(fhir_server, Selection("group", group_id="first-cohort"), terminology)

    assert {o.patient_id: o.status for o in first.outcomes} == {
        "first-a": "written", "first-b": "written", "first-c": "not-assessed"}
    a, b = by_ident(outputs(fhir_server, "first-a")), by_ident(outputs(fhir_server, "first-b"))
    assert stage_of(a["first-a/mdd/assessment"]) == "I"
    assert stage_of(b["first-b/mdd/assessment"]) == "II"
    assert a["first-a/mdd/flag/inadequate-dose"]["status"] == "active"
    assert b["first-b/mdd/flag/treatment-resistant-depression"]["status"] == "active"
    assert "first-a/mdd/flag/treatment-resistant-depression" not in a
    assert outputs(fhir_server, "first-c") == []
    # two writes; on HAPI the two transactions may race for the shared fhirtrd Device, and the one
    # that loses (409) is planned and sent again
    assert first.requests["by_kind"]["transaction"] == 2 + first.replans()
    versions = {k: r["meta"]["versionId"] for k, r in (a | b).items()}

    second = sync(fhir_server, Selection("group", group_id="first-cohort"), terminology)

    assert {o.patient_id: o.status for o in second.outcomes} == {
        "first-a": "unchanged", "first-b": "unchanged", "first-c": "not-assessed"}
    after = by_ident(outputs(fhir_server, "first-a")) | by_ident(outputs(fhir_server, "first-b"))
    assert {k: r["meta"]["versionId"] for k, r in after.items()} == versions
    assert "transaction" not in second.requests["by_kind"]
    # $everything, and the outputs read: one batch where the server lists batch (sekmet), else one
    # search per output type (HAPI lists only "transaction": Observation, Flag, RiskAssessment)
    reads = 2 if fhir_server.kind == "sekmet" else 4
    assert second.requests_per_patient() == reads
    # and the two transactions; a patient planned again reads its outputs and sends once more
    assert first.requests_per_patient() == reads + (2 + first.replans() * reads) / 3


def test_a_changed_patient_is_restaged_by_since_and_its_old_flag_made_inactive(
        fhir_server: FhirServer, terminology: Terminology, tmp_path: Path) -> None:
    load(fhir_server, before_change("since-a"))
    load(fhir_server, mdd_patient("since-quiet", [SERTRALINE]))
    state = SyncState(tmp_path / "state.json", fhir_server.base_url)
    first = sync(fhir_server, Selection("patients", patient_ids=("since-a", "since-quiet")), terminology, state)
    assert first.complete and state.high_water_mark == first.high_water_mark
    time.sleep(1.1)  # the mark has second precision (the server's Date header)

    # the bupropion trial turns out to have been taken at an adequate dose, and failed
    load(fhir_server, failed_trial("since-a", 5, BUPROPION, date(2023, 5, 1)))
    mark = parse_instant(str(state.high_water_mark))
    changed = sync(fhir_server, Selection("since", since=mark), terminology, state)

    assert "since-quiet" not in {o.patient_id for o in changed.outcomes}
    assert [(o.patient_id, o.status) for o in changed.outcomes if o.patient_id == "since-a"] == [
        ("since-a", "written")]
    now = by_ident(outputs(fhir_server, "since-a"))
    assert stage_of(now["since-a/mdd/assessment"]) == "II"
    old_flag = now["since-a/mdd/flag/inadequate-dose"]
    assert old_flag["status"] == "inactive"
    assert parse_instant(old_flag["period"]["end"]) >= mark - timedelta(seconds=1)
    assert now["since-a/mdd/flag/treatment-resistant-depression"]["status"] == "active"
    assert parse_instant(str(state.high_water_mark)) > mark
    # updated outputs hold one content hash: HAPI would carry the old one forward without
    # fhirtrd's X-Meta-Snapshot-Mode: TAG, and the next run could not tell which is current
    assert int(now["since-a/mdd/assessment"]["meta"]["versionId"]) > 1
    assert {ref: len([t for t in r["meta"]["tag"] if t["system"].endswith("/CodeSystem/content-hash")])
            for ref, r in now.items()} == {ref: 1 for ref in now}
    again = sync(fhir_server, Selection("patients", patient_ids=("since-a",)), terminology)
    assert [o.status for o in again.outcomes] == ["unchanged"]


def test_an_interrupted_run_resumes_without_redoing_or_duplicating(
        fhir_server: FhirServer, terminology: Terminology, tmp_path: Path) -> None:
    pids = [f"resume-{i}" for i in range(6)]
    for pid in pids:
        load(fhir_server, mdd_patient(pid, [SERTRALINE, BUPROPION]))
    selection = Selection("patients", patient_ids=tuple(pids))
    state_path = tmp_path / "state.json"

    def stop_after_three(outcome: Any, report: RunReport) -> None:
        if len(report.outcomes) == 3:
            raise KeyboardInterrupt

    client = FhirClient(fhir_server.base_url)
    interrupted = run_sync(client, selection, terminology, SyncConfig(as_of=AS_OF, workers=2),
                           state=SyncState(state_path, fhir_server.base_url), progress=stop_after_three)
    assert interrupted.interrupted and not interrupted.complete
    # as if the crash came between a patient's transaction and its line in the state file
    doc = json.loads(state_path.read_text())
    recorded = sorted(doc["current"]["done"])
    assert len(recorded) == 3
    forgotten = recorded.pop()
    del doc["current"]["done"][forgotten]
    state_path.write_text(json.dumps(doc))

    resumed = run_sync(FhirClient(fhir_server.base_url), selection, terminology,
                       SyncConfig(as_of=AS_OF, workers=2), state=SyncState(state_path, fhir_server.base_url))

    assert resumed.resumed and resumed.complete
    assert resumed.skipped_done == 2
    assert {o.patient_id for o in resumed.outcomes} == set(pids) - set(recorded)
    assert {o.patient_id: o.status for o in resumed.outcomes}[forgotten] == "unchanged"
    for pid in pids:
        counts = Counter(ident(r) for r in outputs(fhir_server, pid))
        assert counts and set(counts.values()) == {1}, f"{pid}: {counts}"
    assert "current" not in json.loads(state_path.read_text())


def test_duplicate_outputs_on_the_server_fail_that_patient_only(
        fhir_server: FhirServer, terminology: Terminology) -> None:
    load(fhir_server, mdd_patient("dup-a", [SERTRALINE, BUPROPION]))
    load(fhir_server, mdd_patient("dup-b", [SERTRALINE, BUPROPION]))
    sync(fhir_server, Selection("patients", patient_ids=("dup-a",)), terminology)
    flag = by_ident(outputs(fhir_server, "dup-a"))["dup-a/mdd/flag/treatment-resistant-depression"]
    copy = {k: v for k, v in flag.items() if k not in ("id", "meta")} | {"meta": {"tag": flag["meta"]["tag"]}}
    requests.post(f"{fhir_server.base_url}/Flag", json=copy, timeout=30).raise_for_status()
    load(fhir_server, failed_trial("dup-a", 7, ("venlafaxine", "39786", 150), date(2023, 9, 1)))

    report = sync(fhir_server, Selection("patients", patient_ids=("dup-a", "dup-b")), terminology)

    status = {o.patient_id: o for o in report.outcomes}
    assert status["dup-b"].status == "written"
    assert status["dup-a"].status == "failed"
    assert "dup-a/mdd/flag/treatment-resistant-depression" in str(status["dup-a"].reason)
    assert status["dup-a"].error == "OutputConflict"


def test_dry_run_plans_and_writes_nothing(fhir_server: FhirServer, terminology: Terminology) -> None:
    load(fhir_server, mdd_patient("dry-a", [SERTRALINE, BUPROPION]))

    report = sync(fhir_server, Selection("patients", patient_ids=("dry-a",)), terminology, dry_run=True)

    (outcome,) = report.outcomes
    assert outcome.status == "planned"
    assert outcome.plan is not None and outcome.plan.counts()["create"] >= 4
    assert any("dry-a/mdd/flag/treatment-resistant-depression" in line for line in outcome.plan.describe())
    assert outputs(fhir_server, "dry-a") == []


def test_real_patients_sync_without_failures(fhir_server: FhirServer, terminology: Terminology) -> None:
    folder = SHARED / "data" / "real-fhir" / "synthea-2019-smart-generated-sample-data"
    if not folder.is_dir():
        pytest.skip(f"the shared real-FHIR corpus is not at {folder}")
    session = requests.Session()
    for info in sorted(folder.glob("*Information*.json.gz")):
        post_bundle(session, fhir_server.base_url, read_bundle(info))
    files = sorted(p for p in folder.glob("*.json.gz") if "Information" not in p.name)[:8]
    pids = []
    for path in files:
        bundle = stable_ids(read_bundle(path))
        post_bundle(session, fhir_server.base_url, bundle)
        pids += [e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]

    report = sync(fhir_server, Selection("patients", patient_ids=tuple(pids)), terminology)

    assert [(o.patient_id, o.reason) for o in report.failed] == []
    assert report.counts()["read"] == len(pids)
    again = sync(fhir_server, Selection("patients", patient_ids=tuple(pids)), terminology)
    assert again.counts()["written"] == 0


def test_all_selects_every_patient_and_since_sends_milliseconds(
        fhir_server: FhirServer, terminology: Terminology) -> None:
    load(fhir_server, [patient("all-a"), patient("all-b")])

    report = sync(fhir_server, Selection("all"), terminology, dry_run=True)

    assert {"all-a", "all-b"} <= {o.patient_id for o in report.outcomes}
    since = datetime(2024, 6, 1, tzinfo=UTC)
    assert Selection("since", since=since).key == {"mode": "since", "since": fhir_instant(since)}
    assert fhir_instant(since) == "2024-06-01T00:00:00.000Z"
