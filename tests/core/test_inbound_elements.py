"""The typed element reader (issue 9): wrong types, huge numbers and deep nesting are warnings naming the element."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pytest

from fhirtrd.fhir.elements import MAX_DEPTH, depth_exceeds
from fhirtrd.fhir.reader import ReadReport
from fhirtrd.service import classify_resources
from fhirtrd.terminology import Terminology

from .conftest import (
    AS_OF,
    CITALOPRAM,
    SERTRALINE,
    concept,
    condition,
    dispense,
    dosage,
    facts,
    mdd,
    order,
    patient,
    run_cli,
    warnings_with,
    write_json,
)


def _wrong_type(terminology: Terminology, resource: dict) -> list[tuple[str | None, str | None]]:
    _, warnings = facts(terminology, [patient(), mdd(), resource])
    return [(w.resource, w.element) for w in warnings_with(warnings, "unusable-element")]


def test_a_code_that_is_a_list_is_a_warning_naming_resource_and_element(terminology: Terminology) -> None:
    rx = order(SERTRALINE, rid="rx-bad")
    rx["medicationCodeableConcept"]["coding"].insert(0, {"system": ["x"], "code": {"a": 1}})
    assert _wrong_type(terminology, rx) == [
        ("MedicationRequest/rx-bad", "MedicationRequest.medication[x].coding[0].system"),
        ("MedicationRequest/rx-bad", "MedicationRequest.medication[x].coding[0].code"),
    ]
    rx = order(SERTRALINE, rid="rx-bad-display")
    rx["medicationCodeableConcept"]["coding"][0]["display"] = ["sertraline"]
    assert ("MedicationRequest/rx-bad-display", "MedicationRequest.medication[x].coding[0].display") in _wrong_type(
        terminology, rx)


def test_contained_that_is_not_a_list_is_a_warning(terminology: Terminology) -> None:
    rx = order({"reference": "#m"}, rid="rx-contained", contained=7)
    record, warnings = facts(terminology, [patient(), mdd(), rx])
    assert ("MedicationRequest/rx-contained", "MedicationRequest.contained") in [
        (w.resource, w.element) for w in warnings_with(warnings, "unusable-element")]
    assert record.exposures == ()


@pytest.mark.parametrize("days", [1e8, 10**40])
def test_a_huge_supply_is_a_warning_not_an_overflow(terminology: Terminology, days: float) -> None:
    rx = order(SERTRALINE, "2025-01-01", rid="rx-huge", days=days, repeats=3)
    md = dispense(handed_over="2025-01-02", days=days, rid="md-huge")
    record, warnings = facts(terminology, [patient(), mdd(), rx, md])
    named = {(w.resource, w.element) for w in warnings_with(warnings, "unusable-element")}
    assert any(ref == "MedicationRequest/rx-huge" and el.startswith(
        "MedicationRequest.dispenseRequest.expectedSupplyDuration") for ref, el in named)
    assert any(ref == "MedicationDispense/md-huge" and el.startswith("MedicationDispense.daysSupply")
               for ref, el in named)
    assert record.dispenses == ()
    [exposure] = record.exposures
    assert exposure.supply_days is None


@pytest.mark.parametrize("days", [math.inf, math.nan])
def test_a_non_finite_supply_is_a_warning_naming_the_element(terminology: Terminology, days: float) -> None:
    rx = order(SERTRALINE, "2025-01-01", rid="rx-nan", days=days)
    _, warnings = facts(terminology, [patient(), mdd(), rx])
    assert [w.element for w in warnings if w.resource == "MedicationRequest/rx-nan"] == [
        "MedicationRequest.dispenseRequest.expectedSupplyDuration.value"]


def test_an_absurd_dose_warns_even_without_a_frequency(terminology: Terminology) -> None:
    """Issue 9: an absurd dose with no timing used to pass silently as 'dose unknown'."""
    rx = order(SERTRALINE, rid="rx-absurd", dose=dosage(1e8, "mg", frequency=None,
                                                period=None, period_unit=None))
    _, warnings = facts(terminology, [patient(), mdd(), rx])
    [w] = warnings_with(warnings, "implausible-dose")
    assert w.resource == "MedicationRequest/rx-absurd"


def test_deep_nesting_is_refused_at_every_door_with_a_warning(terminology: Terminology) -> None:
    deep: dict = {"text": "x"}
    for _ in range(MAX_DEPTH + 5):
        deep = {"coding": [deep]}
    bad = condition("F33.1", pid="p1")
    bad["id"], bad["note"] = "deep", deep
    report = ReadReport()
    results = classify_resources([patient(), {"resourceType": "Bundle", "type": "collection",
                                              "entry": [{"resource": bad}, {"resource": mdd()}]}],
                                 terminology, AS_OF, report=report)
    assert [w.resource for w in report.warnings if w.code == "too-deep"] == ["Condition/deep"]
    assert results[0].assessments  # the rest of the Bundle was still read
    assert depth_exceeds(deep) and not depth_exceeds(mdd())


def test_dates_outside_any_clinical_range_are_not_used(terminology: Terminology) -> None:
    rx = order(SERTRALINE, "0001-01-01", rid="rx-year-1")
    record, warnings = facts(terminology, [patient(), mdd(), rx], as_of=date(2025, 6, 30))
    assert record.exposures == ()
    assert [w.resource for w in warnings if "authoredOn" in (w.element or "")] == ["MedicationRequest/rx-year-1"]


def test_the_cli_writes_whole_documents_when_a_patient_id_is_bad(tmp_path: Path) -> None:
    """Issue 9: a Patient id that is not a FHIR id is skipped at input; every later patient is still written."""
    bad = [{"resourceType": "Patient", "id": "a b"}, condition("F33.1", pid="a b"),
           order(SERTRALINE, "2025-01-01", pid="a b")]
    good = [patient("ok"), mdd("ok"), order(SERTRALINE, "2025-01-01", pid="ok")]
    src = write_json(tmp_path / "in.json", {"resourceType": "Bundle", "type": "collection",
                                            "entry": [{"resource": r} for r in bad + good]})
    code, out, _ = run_cli("classify", src, "--as-of", "2025-06-30", "--format", "fhir", "--no-progress")
    assert code == 0
    bundles = [json.loads(line) for line in out.splitlines()]
    assert len(bundles) == 1 and "Patient/ok" in json.dumps(bundles[0])
    code, out, _ = run_cli("classify", src, "--as-of", "2025-06-30", "--format", "json", "--no-progress")
    doc = json.loads(out)  # one whole JSON document
    assert [r["patient"] for r in doc["results"]] == ["Patient/ok"]
    assert any(w.get("element") == "Patient.id" for w in doc["warnings"])
    out_dir = tmp_path / "out"
    code, _, _ = run_cli("classify", src, "--as-of", "2025-06-30", "--format", "fhir", "--out", out_dir,
                         "--no-progress")
    assert code == 0 and sorted(p.name for p in out_dir.iterdir()) == ["ok.json"]


def test_a_contained_resource_without_a_type_is_a_warning_not_a_crash(terminology: Terminology) -> None:
    """Found by the 50,000-example fuzz run: `contained[0].resourceType` empty made the validator raise KeyError."""
    rx = order({"reference": "#med"}, rid="rx-untyped",
               contained=[{"resourceType": "", "id": "med", "code": concept(CITALOPRAM)}])
    record, warnings = facts(terminology, [patient(), mdd(), rx])
    assert record.exposures == ()
    assert [w.code for w in warnings if w.resource == "MedicationRequest/rx-untyped"] == ["invalid"]
