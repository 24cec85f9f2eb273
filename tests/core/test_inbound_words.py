"""Brand names and the side-effect wording of stop reasons (clinical-spec §2 v2, §2.2 v2)."""

from __future__ import annotations

import pytest

from fhirtrd.terminology import Terminology

from .conftest import facts, mdd, order, patient


@pytest.mark.parametrize(("text", "ingredient", "strength"), [
    ("Zoloft 100 MG Oral Tablet", "sertraline", 100), ("Effexor XR 75 mg capsule", "venlafaxine", 75),
    ("LEXAPRO 10 MG", "escitalopram", 10), ("Prozac", "fluoxetine", None), ("Wellbutrin XL 150 MG", "bupropion", 150),
    ("Cymbalta 60 mg", "duloxetine", 60),
])
def test_brand_names_in_text_resolve_to_their_ingredient(terminology: Terminology, text: str, ingredient: str,
                                                          strength: float | None) -> None:
    rx = order({"text": text}, dose={"doseAndRate": [{"doseQuantity": {"value": 1, "unit": "TAB"}}],
                                     "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}})
    record, _ = facts(terminology, [patient(), mdd(), rx])
    [e] = record.exposures
    assert (e.ingredient, e.daily_dose) == (ingredient, strength)


@pytest.mark.parametrize("reason", [
    "nausea", "Vomiting", "GI upset", "diarrhoea", "diarrhea", "sexual side effects", "sexual dysfunction", "rash",
    "weight gain", "sedation", "activation", "agitation", "headache", "dizziness", "insomnia caused by the drug",
    "hyponatraemia", "hyponatremia", "serotonin syndrome", "QT prolongation",
])
def test_side_effect_words_make_the_stop_reason_an_adverse_effect(terminology: Terminology, reason: str) -> None:
    rx = order(status="stopped", reason=f"stopped: {reason}")
    record, _ = facts(terminology, [patient(), mdd(), rx])
    assert [e.stop_reason for e in record.exposures] == ["adverse-effect"]


def test_a_stop_for_another_reason_is_not_an_adverse_effect(terminology: Terminology) -> None:
    record, _ = facts(terminology, [patient(), mdd(), order(status="stopped", reason="patient moved away")])
    assert [e.stop_reason for e in record.exposures] == [None]


def test_the_snomed_side_effect_stop_reason_code_is_an_adverse_effect(terminology: Terminology) -> None:
    """SNOMED CT 182864000 "Drug not taken - side-effects" (HL7 reason-medication-status-codes), code only."""
    coded = {"coding": [{"system": "http://snomed.info/sct", "code": "182864000"}]}
    record, _ = facts(terminology, [patient(), mdd(), order(status="stopped", statusReason=coded)])
    assert [e.stop_reason for e in record.exposures] == ["adverse-effect"]
    other = {"coding": [{"system": "http://snomed.info/sct", "code": "182865004"}]}  # "inconvenient": not adverse
    record, _ = facts(terminology, [patient(), mdd(), order(status="stopped", statusReason=other)])
    assert [e.stop_reason for e in record.exposures] == [None]
