"""Scores as the inbound adapter reads them: verified results only, with their full timestamps (clinical-spec §3 v2)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from fhirtrd.terminology import Terminology

from .conftest import SERTRALINE, facts, mdd, order, patient, score, warnings_with


@pytest.mark.parametrize("status", ["preliminary", "registered", "unknown"])
def test_unverified_scores_are_skipped_with_a_warning_naming_the_resource(terminology: Terminology,
                                                                          status: str) -> None:
    obs = score("phq9", 20, "2025-01-01", rid="o-unverified")
    obs["status"] = status
    record, warnings = facts(terminology, [patient(), mdd(), order(SERTRALINE), obs])
    assert record.measurements == ()
    [w] = warnings_with(warnings, "unverified-result")
    assert (w.resource, w.element) == ("Observation/o-unverified", "Observation.status")
    assert status in w.message


@pytest.mark.parametrize("status", ["final", "amended", "corrected"])
def test_verified_scores_carry_their_instant_and_issued_time(terminology: Terminology, status: str) -> None:
    obs = score("phq9", 20, "2025-01-01T09:30:00-05:00", rid="o-final")
    obs["status"], obs["issued"] = status, "2025-01-01T16:00:00Z"
    record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE), obs])
    [m] = record.measurements
    assert m.when == date(2025, 1, 1)  # the calendar date as written
    assert m.instant == datetime(2025, 1, 1, 14, 30, tzinfo=UTC)
    assert m.issued == datetime(2025, 1, 1, 16, 0, tzinfo=UTC)
    date_only = score("phq9", 18, "2025-02-01", rid="o-date")
    record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE), date_only])
    assert [(m.when, m.instant) for m in record.measurements] == [(date(2025, 2, 1), None)]


def _qr(items: list[dict], *, questionnaire: str = "http://loinc.org/q/44249-1", status: str = "completed") -> dict:
    return {"resourceType": "QuestionnaireResponse", "id": "qr1", "questionnaire": questionnaire, "status": status,
            "subject": {"reference": "Patient/p1"}, "authored": "2025-01-05T09:00:00Z", "item": items}


def _item(code: str, answer: str) -> dict:
    return {"linkId": f"/{code}", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": answer}}]}


PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]


def test_a_questionnaire_response_without_total_sums_its_nine_answers(terminology: Terminology) -> None:
    """§3 v2: LA6568-5 = 0 … LA6571-9 = 3; all nine answered → the PHQ-9 is their sum (Kroenke 2001)."""
    answers = ["LA6571-9", "LA6570-1", "LA6570-1", "LA6569-3", "LA6569-3", "LA6568-5", "LA6568-5", "LA6570-1",
               "LA6568-5"]  # 3 + 2 + 2 + 1 + 1 + 0 + 0 + 2 + 0 = 11
    qr = _qr([_item(c, a) for c, a in zip(PHQ9_ITEMS, answers, strict=True)])
    record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE), qr])
    got = {m.concept: (m.value, m.when, m.instant) for m in record.measurements}
    assert got["phq9"] == (11, date(2025, 1, 5), datetime(2025, 1, 5, 9, 0, tzinfo=UTC))
    assert (got["phq9-item1"][0], got["phq9-item3"][0], got["phq9-item4"][0]) == (3, 2, 1)


def test_a_questionnaire_response_missing_an_answer_gives_no_total(terminology: Terminology) -> None:
    qr = _qr([_item(c, "LA6570-1") for c in PHQ9_ITEMS[:8]])
    record, warnings = facts(terminology, [patient(), mdd(), order(SERTRALINE), qr])
    assert "phq9" not in {m.concept for m in record.measurements}
    assert [w.resource for w in warnings if w.element == "QuestionnaireResponse.item"] == [
        "QuestionnaireResponse/qr1"]


def test_in_progress_or_unmapped_questionnaires_are_not_scores(terminology: Terminology) -> None:
    items = [_item(c, "LA6570-1") for c in PHQ9_ITEMS]
    for qr in (_qr(items, status="in-progress"), _qr(items, questionnaire="http://example.org/Questionnaire/x")):
        record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE), qr])
        assert record.measurements == ()
