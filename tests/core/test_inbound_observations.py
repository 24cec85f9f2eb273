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
