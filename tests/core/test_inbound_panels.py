"""PHQ-9 panel Observations (LOINC 44249-1) with item components only: the sum of the items (clinical-spec §3 v2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhirtrd.terminology import Terminology

from .conftest import REAL, SERTRALINE, facts, mdd, order, patient, warnings_with

LOINC = "http://loinc.org"
#: the nine PHQ-9 item codes in the order of the form (US Core Questionnaire-phq-9-example)
ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
#: LOINC answer codes of the PHQ-9 items and their scores (mappings/answer_scores.csv)
ANSWER = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}
US_CORE = REAL / "hl7-examples" / "us-core-9.0.0"


def _item(code: str, score: int, form: str = "answer") -> dict[str, Any]:
    comp: dict[str, Any] = {"code": {"coding": [{"system": LOINC, "code": code}]}}
    if form == "answer":
        comp["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": ANSWER[score]}]}
    elif form == "integer":
        comp["valueInteger"] = score
    else:
        comp["valueQuantity"] = {"value": score, "unit": "{score}", "system": "http://unitsofmeasure.org",
                                 "code": "{score}"}
    return comp


def _panel(components: list[dict[str, Any]], rid: str = "panel-1") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "44249-1"}]}, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2025-01-04T10:30:00Z", "component": components}


def _phq9(terminology: Terminology, panel: dict[str, Any]) -> tuple[list[float], list[Any]]:
    record, warnings = facts(terminology, [patient(), mdd(), order(SERTRALINE), panel])
    return [m.value for m in record.measurements if m.concept == "phq9"], warnings


def test_a_panel_with_the_nine_items_and_no_total_scores_their_sum(terminology: Terminology) -> None:
    """Kroenke 2001: the PHQ-9 total is the sum of the nine items (0-3 each): 3+3+2+2+2+2+2+2+2 = 20."""
    scores = [3, 3, 2, 2, 2, 2, 2, 2, 2]
    forms = ["answer", "integer", "quantity"] * 3
    assert _phq9(terminology, _panel([_item(c, s, f) for c, s, f in zip(ITEMS, scores, forms, strict=True)]))[0] == [20.0]


def test_a_panel_with_a_total_component_uses_the_total(terminology: Terminology) -> None:
    total = {"code": {"coding": [{"system": LOINC, "code": "44261-6"}]}, "valueInteger": 15}
    items = [_item(c, 3) for c in ITEMS]  # the items would sum to 27
    assert _phq9(terminology, _panel([*items, total]))[0] == [15.0]


def test_a_panel_missing_an_item_is_not_a_score_and_says_so(terminology: Terminology) -> None:
    values, warnings = _phq9(terminology, _panel([_item(c, 2) for c in ITEMS[:8]], rid="panel-8"))
    assert values == []
    [w] = warnings_with(warnings, "incomplete-panel")
    assert w.resource == "Observation/panel-8"
    assert "8 of 9 items" in w.message


def test_an_item_out_of_its_range_is_not_summed(terminology: Terminology) -> None:
    items = [_item(c, 2, "integer") for c in ITEMS]
    items[4]["valueInteger"] = 7  # a PHQ-9 item scores 0-3
    values, warnings = _phq9(terminology, _panel(items))
    assert values == [] and warnings_with(warnings, "incomplete-panel")


def test_the_items_still_feed_the_item_rules(terminology: Terminology) -> None:
    record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE), _panel([_item(c, 1) for c in ITEMS])])
    concepts = sorted(m.concept for m in record.measurements)
    assert concepts == ["phq9", "phq9-item1", "phq9-item3", "phq9-item4", "phq9-item9"]


@pytest.mark.skipif(not US_CORE.is_dir(), reason="real corpus not present")
def test_the_us_core_panel_items_are_the_ones_mapped(terminology: Terminology) -> None:
    """The item codes of the panel table are the nine scored items of the US Core PHQ-9 Questionnaire."""
    questionnaire = json.loads((US_CORE / "Questionnaire-phq-9-example.json").read_text())
    scored = [i["linkId"].strip("/") for i in questionnaire["item"] if i["linkId"] not in ("/44261-6", "/69722-7")]
    panel = terminology.panels[(LOINC, "44249-1")]
    assert sorted(code for _, code in panel.items) == sorted(scored) == sorted(ITEMS)
