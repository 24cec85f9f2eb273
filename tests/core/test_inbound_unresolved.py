"""Every medication that is not resolved gives exactly one warning naming the resource and what was seen
(clinical-spec §2 v2: a medication never vanishes silently)."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtrd.terminology import Terminology

from .conftest import (RXNORM, SERTRALINE, concept, dispense, facts, mdd, medication, order, patient, statement,
                       warnings_with)

LISINOPRIL = concept("314076", RXNORM, display="lisinopril 10 MG Oral Tablet")
LOCAL = "http://hospital.example/formulary"


def _unresolved(terminology: Terminology, resources: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    record, warnings = facts(terminology, [patient(), mdd(), *resources])
    assert record.exposures == () and record.dispenses == ()
    return [(w.resource, w.message) for w in warnings_with(warnings, "unresolved-medication")]


@pytest.mark.parametrize(("med", "seen"), [
    (LISINOPRIL, ["'lisinopril 10 MG Oral Tablet'", f"{RXNORM}|314076"]),
    ({"text": "House cough mixture"}, ["'House cough mixture'"]),
    (concept("X-17", LOCAL), [f"{LOCAL}|X-17"]),
    ({"coding": []}, ["no code or text"]),
])
def test_an_unknown_medication_gives_one_warning_with_its_text_or_code(terminology: Terminology,
                                                                       med: dict[str, Any], seen: list[str]) -> None:
    [(resource, message)] = _unresolved(terminology, [order(med, rid="rx-1")])
    assert resource == "MedicationRequest/rx-1"
    assert all(s in message for s in seen), message


def test_a_referenced_medication_resource_that_resolves_to_nothing_names_its_code(terminology: Terminology) -> None:
    """The order comes before its Medication (read late): still exactly one warning, not one per pass."""
    med = medication("m-local", concept("X-18", LOCAL, display="Formulary item 18"))
    [(resource, message)] = _unresolved(terminology, [order({"reference": "Medication/m-local"}, rid="rx-2"), med])
    assert resource == "MedicationRequest/rx-2" and "Formulary item 18" in message and f"{LOCAL}|X-18" in message


def test_a_medication_resource_with_no_code_names_the_reference(terminology: Terminology) -> None:
    [(resource, message)] = _unresolved(terminology, [order({"reference": "Medication/m-bare"}, rid="rx-3"),
                                                      medication("m-bare")])
    assert resource == "MedicationRequest/rx-3" and "Medication/m-bare" in message


def test_each_resource_of_an_unresolved_medication_warns_once(terminology: Terminology) -> None:
    resources = [order(LISINOPRIL, rid="rx-4"), dispense(LISINOPRIL, rid="md-4"),
                 statement(LISINOPRIL, rid="ms-4")]
    warned = [resource for resource, _ in _unresolved(terminology, resources)]
    assert sorted(warned) == ["MedicationDispense/md-4", "MedicationRequest/rx-4", "MedicationStatement/ms-4"]


def test_resolved_and_entered_in_error_medications_give_no_such_warning(terminology: Terminology) -> None:
    record, warnings = facts(terminology, [patient(), mdd(), order(SERTRALINE),
                                           order(LISINOPRIL, status="entered-in-error")])
    assert len(record.exposures) == 1 and warnings_with(warnings, "unresolved-medication") == []


def test_spravato_by_brand_name_is_esketamine(terminology: Terminology) -> None:
    """clinical-spec §2 v2 brand names: SPRAVATO (openFDA NDC 50458-028) is esketamine, no longer unresolved."""
    record, warnings = facts(terminology, [patient(), mdd(), statement({"text": "Spravato 56 mg nasal spray"})])
    assert [e.ingredient for e in record.exposures] == ["esketamine"]
    assert warnings_with(warnings, "unresolved-medication") == []
