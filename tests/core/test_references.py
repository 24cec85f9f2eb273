"""Partial dates and the real forms of patient references (FHIR R4 date, Reference)."""

from __future__ import annotations

from datetime import date

import pytest

from fhirtrd.fhir.inbound import parse_date
from fhirtrd.terminology import Terminology

from .conftest import SERTRALINE, assess, condition, facts, order, score


@pytest.mark.parametrize(("text", "end", "expected"), [
    ("2024-05", False, date(2024, 5, 1)),
    ("2024-05", True, date(2024, 5, 31)),
    ("2024-02", True, date(2024, 2, 29)),
    ("2024", False, date(2024, 1, 1)),
    ("2024", True, date(2024, 12, 31)),
    ("2024-05-17T23:30:00-05:00", False, date(2024, 5, 17)),  # the date as written, no UTC shift
    ("2024-13", False, None),
    ("soon", False, None),
])
def test_partial_dates(text: str, end: bool, expected: date | None) -> None:
    assert parse_date(text, end=end) == expected


def _entry(full_url: str, resource: dict) -> dict:
    return {"fullUrl": full_url, "resource": resource}


def _with_subject(resource: dict, reference: str) -> dict:
    return {**resource, "subject": {"reference": reference}}


def test_every_reference_form_resolves_to_one_patient(terminology: Terminology) -> None:
    # a transaction Bundle as EHRs send it: urn:uuid fullUrls, an absolute URL on the Bundle's own
    # server (its base is the base of an entry's fullUrl) and a relative reference
    entries = [
        _entry("urn:uuid:7f0c", {"resourceType": "Patient", "id": "px"}),
        _entry("urn:uuid:c1", _with_subject(condition("F33.1", onset="2024-05"), "urn:uuid:7f0c")),
        _entry("https://ehr.example/fhir/MedicationRequest/c2", _with_subject(order(SERTRALINE, "2024-05", days=90),
                                            "https://ehr.example/fhir/Patient/px")),
        _entry("urn:uuid:c3", _with_subject(score("phq9", 20, "2024-04"), "Patient/px")),
        _entry("urn:uuid:c4", _with_subject(score("phq9", 9, "2024-07-15"), "urn:uuid:7f0c")),
    ]
    for order_of_entries in (entries, entries[1:] + entries[:1]):  # Patient first, or last
        results = assess(terminology, [{"resourceType": "Bundle", "type": "transaction", "entry": order_of_entries}])
        assert [r.patient for r in results] == ["Patient/px"]
        [a] = results[0].assessments
        [t] = a.trials
        # the partial dates: order "2024-05" starts 1 May; PHQ-9 "2024-04" is 1 Apr (30 days before)
        assert (t.start, t.baseline, t.endpoint, t.outcome) == (date(2024, 5, 1), 20, 9, "response")
        assert a.diagnosis == "recorded"


def test_a_reference_to_another_server_is_a_warning_not_a_merge(terminology: Terminology) -> None:
    """Issue 9: data about `Patient/px` on another hospital's server never joins the local px."""
    from fhirtrd.fhir.reader import ReadReport
    from fhirtrd.service import classify_resources

    local = "https://ehr.example/fhir"
    entries = [
        _entry(f"{local}/Patient/px", {"resourceType": "Patient", "id": "px"}),
        _entry(f"{local}/Condition/c1", _with_subject(condition("F33.1", onset="2024-05"), "Patient/px")),
        _entry(f"{local}/MedicationRequest/o1", _with_subject(order(SERTRALINE, "2024-05-01", days=90),
                                                               f"{local}/Patient/px")),
        _entry("urn:uuid:o2", _with_subject(order(SERTRALINE, "2024-06-01", days=90, rid="foreign"),
                                            "https://other-hospital.example/fhir/Patient/px")),
        _entry("urn:uuid:o3", _with_subject(order(SERTRALINE, "2024-07-01", days=90, rid="conditional"),
                                            "Patient?identifier=urn:mrn|123")),
    ]
    report = ReadReport()
    results = classify_resources([{"resourceType": "Bundle", "type": "collection", "entry": entries}], terminology,
                                 date(2025, 6, 30), report=report)
    assert [r.patient for r in results] == ["Patient/px"]
    record, _ = facts(terminology, [{"resourceType": "Bundle", "type": "collection", "entry": entries}], pid="px")
    assert [e.ref for e in record.exposures] == [f"MedicationRequest/{entries[2]['resource']['id']}"]
    warned = {w.resource: w for w in report.warnings if w.code == "foreign-reference"}
    assert set(warned) == {"MedicationRequest/foreign", "MedicationRequest/conditional"}
    assert "another server" in warned["MedicationRequest/foreign"].message
    assert "https://other-hospital.example/fhir/Patient/px" in warned["MedicationRequest/foreign"].message
    assert warned["MedicationRequest/foreign"].element == "MedicationRequest.subject"


@pytest.mark.parametrize("bad_id", ["a b", "x" * 65, "p1\n", "p/1", ""])
def test_a_patient_id_that_is_not_a_fhir_id_is_skipped_at_input(terminology: Terminology, bad_id: str) -> None:
    """Issue 9: the patient is skipped with a warning; the write-back never sees the bad id."""
    from fhirtrd.fhir.reader import ReadReport
    from fhirtrd.service import classify_resources

    bad = [{"resourceType": "Patient", "id": bad_id}, _with_subject(condition("F33.1"), f"Patient/{bad_id}"),
           _with_subject(order(SERTRALINE, "2025-01-01"), f"Patient/{bad_id}")]
    good = [{"resourceType": "Patient", "id": "ok"}, _with_subject(condition("F33.1"), "Patient/ok")]
    report = ReadReport()
    results = classify_resources(bad + good, terminology, date(2025, 6, 30), report=report)
    assert [r.patient for r in results] == ["Patient/ok"]
    assert [w.element for w in report.warnings if w.resource == "Patient"] == ["Patient.id"]
