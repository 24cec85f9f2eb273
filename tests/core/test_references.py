"""Partial dates and the real forms of patient references (FHIR R4 date, Reference)."""

from __future__ import annotations

from datetime import date

import pytest

from fhirtrd.fhir.inbound import parse_date
from fhirtrd.terminology import Terminology

from .conftest import SERTRALINE, assess, condition, order, score


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
    # a transaction Bundle as EHRs send it: urn:uuid fullUrls, an absolute URL and a relative reference
    entries = [
        _entry("urn:uuid:7f0c", {"resourceType": "Patient", "id": "px"}),
        _entry("urn:uuid:c1", _with_subject(condition("F33.1", onset="2024-05"), "urn:uuid:7f0c")),
        _entry("urn:uuid:c2", _with_subject(order(SERTRALINE, "2024-05", days=90),
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
