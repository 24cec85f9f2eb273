"""Medication resolution in the order of clinical-spec §2 "Ingredient and strength"."""

from __future__ import annotations

from typing import Any

from fhirtrd.terminology import Terminology

from .conftest import (
    ATC,
    RXNORM,
    SERTRALINE,
    SERTRALINE_100_TAB,
    assess,
    concept,
    dosage,
    facts,
    medication,
    order,
    warnings_with,
)

BID_TABLET = dosage(1, "tablet", code="BID")


def resolved(terminology: Terminology, resources: list[dict[str, Any]]) -> list[tuple[str, float | None]]:
    record, _ = facts(terminology, resources)
    return [(e.ingredient, e.daily_dose) for e in record.exposures]


def test_ingredient_code(terminology: Terminology) -> None:
    # RxNorm ingredient 36437 = sertraline (clinical-spec §8); mg dose needs no strength
    assert resolved(terminology, [order(SERTRALINE, dose=dosage(100, "mg"))]) == [("sertraline", 100.0)]


def test_ingredient_code_takes_the_strength_from_its_display(terminology: Terminology) -> None:
    med = concept(SERTRALINE, display="sertraline 100 MG Oral Tablet")
    assert resolved(terminology, [order(med, dose=BID_TABLET)]) == [("sertraline", 200.0)]


def test_clinical_drug_code_from_the_product_table(terminology: Terminology) -> None:
    # SCD 312938 "Sertraline 100 MG Oral Tablet" → sertraline at 100 mg per tablet
    assert resolved(terminology, [order(SERTRALINE_100_TAB, dose=BID_TABLET)]) == [("sertraline", 200.0)]


def test_contained_medication(terminology: Terminology) -> None:
    r = order({"reference": "#m1"}, dose=BID_TABLET)
    r["contained"] = [medication("m1", concept(SERTRALINE_100_TAB))]
    assert resolved(terminology, [r]) == [("sertraline", 200.0)]


def test_referenced_medication_seen_before_the_order(terminology: Terminology) -> None:
    resources = [medication("m2", concept(SERTRALINE_100_TAB)), order({"reference": "Medication/m2"}, dose=BID_TABLET)]
    assert resolved(terminology, resources) == [("sertraline", 200.0)]


def test_referenced_medication_arriving_after_the_order(terminology: Terminology) -> None:
    # Bulk Data NDJSON: MedicationRequest.ndjson may be read before Medication.ndjson
    resources = [order({"reference": "Medication/m3"}, dose=BID_TABLET), medication("m3", concept(SERTRALINE_100_TAB))]
    record, warnings = facts(terminology, resources)
    assert [(e.ingredient, e.daily_dose) for e in record.exposures] == [("sertraline", 200.0)]
    assert warnings == []


def test_referenced_medication_by_absolute_url(terminology: Terminology) -> None:
    resources = [order({"reference": "https://ehr.example/fhir/Medication/m4"}, dose=BID_TABLET),
                 medication("m4", concept(SERTRALINE_100_TAB))]
    assert resolved(terminology, resources) == [("sertraline", 200.0)]


def test_medication_that_never_arrives_is_reported(terminology: Terminology) -> None:
    record, warnings = facts(terminology, [order({"reference": "Medication/gone"}, rid="rx-gone")])
    assert record.exposures == ()
    [w] = warnings_with(warnings, "unresolved-medication")
    assert w.resource == "MedicationRequest/rx-gone"
    assert w.element == "MedicationRequest.medication[x]"
    assert "Medication/gone" in w.message


def test_medication_ingredient_with_a_strength_ratio(terminology: Terminology) -> None:
    # a local product code, ingredient sertraline with strength 50 mg / 1 tablet: 1 tablet BID = 100 mg/day
    med = medication("m5", concept("LOCAL-42", "http://hospital.example/drugs", display="House formulary item"),
                     [{"itemCodeableConcept": concept(SERTRALINE),
                       "strength": {"numerator": {"value": 50, "unit": "mg"},
                                    "denominator": {"value": 1, "unit": "TAB"}}}])
    resources = [order({"reference": "Medication/m5"}, dose=BID_TABLET), med]
    assert resolved(terminology, resources) == [("sertraline", 100.0)]


def test_display_text_with_an_unknown_code(terminology: Terminology) -> None:
    # last resort of §2: the drug name and "NN MG" in the display
    med = concept("99999999", RXNORM, display="Sertraline 100MG")
    assert resolved(terminology, [order(med, dose=BID_TABLET)]) == [("sertraline", 200.0)]


def test_known_atc_code(terminology: Terminology) -> None:
    # ATC N06AB06 = sertraline (mappings/atc.csv)
    assert resolved(terminology, [order(concept("N06AB06", ATC), dose=dosage(100, "mg"))]) == [("sertraline", 100.0)]


def test_atc_antidepressant_with_an_unknown_ingredient_is_reported(terminology: Terminology) -> None:
    med = concept("N06AX99", ATC, display="Investigational antidepressant")
    record, warnings = facts(terminology, [order(med, rid="rx-atc")])
    assert record.exposures == ()
    [w] = warnings_with(warnings, "unresolved-medication")
    assert w.resource == "MedicationRequest/rx-atc"
    assert "N06AX99" in w.message


def test_unrelated_drug_is_not_a_fact_but_one_warning(terminology: Terminology) -> None:
    # amoxicillin (RxNorm 723) is not in the mappings: no fact, no assessment, and (clinical-spec §2 v2:
    # a medication never vanishes silently) exactly one warning naming the resource, text and code
    med = concept("723", RXNORM, display="amoxicillin 500 MG Oral Capsule")
    record, warnings = facts(terminology, [order(med, rid="rx-amox")])
    assert record.exposures == ()
    [w] = warnings
    assert (w.code, w.resource) == ("unresolved-medication", "MedicationRequest/rx-amox")
    assert "amoxicillin 500 MG Oral Capsule" in w.message and f"{RXNORM}|723" in w.message
    [result] = assess(terminology, [{"resourceType": "Patient", "id": "p1"}, order(med)])
    assert result.assessments == () and [w.code for w in result.warnings] == ["unresolved-medication"]
