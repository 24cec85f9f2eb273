"""Daily-dose arithmetic of the inbound adapter (clinical-spec §2 "Daily dose")."""

from __future__ import annotations

import pytest

from fhirtrd.terminology import Terminology

from .conftest import (
    SERTRALINE,
    SERTRALINE_100_TAB,
    dispense,
    dosage,
    facts,
    order,
    statement,
    warnings_with,
)


def daily_dose(terminology: Terminology, resource: dict) -> float | None:
    record, _ = facts(terminology, [resource])
    assert len(record.exposures) == 1, record
    return record.exposures[0].daily_dose


@pytest.mark.parametrize(("dose", "expected", "rule"), [
    (dosage(1, "tablet", code="BID"), 200.0,
     "§2: 1 tablet × RxNorm 312938 sertraline 100 MG tablet × BID (timing.code) = 200 mg/day"),
    (dosage(1, "{tbl}", frequency=1, period=12, period_unit="h"), 200.0,
     "§2: 1 tablet every 12 h (timing.repeat frequency/period/periodUnit) = 2 × 100 mg"),
    (dosage(0.5, "TAB", frequency=1, period=1, period_unit="d"), 50.0,
     "§2: half a 100 mg tablet once daily = 50 mg/day"),
    (dosage(150, "mg", frequency=1, period=1, period_unit="d"), 150.0,
     "§2: a dose in mg is taken as it is, × once a day"),
    (dosage(100, "mg", frequency=1, period=2, period_unit="d"), 50.0,
     "§2: 100 mg every 2 days = 50 mg/day"),
    (dosage(0.1, "g", code="QD"), 100.0, "§2: a dose in g converts to mg (dose_units.csv)"),
])
def test_daily_dose_from_a_medication_request(terminology: Terminology, dose: dict, expected: float,
                                              rule: str) -> None:
    assert daily_dose(terminology, order(SERTRALINE_100_TAB, dose=dose)) == expected, rule


def test_dose_range_uses_its_low_value(terminology: Terminology) -> None:
    # clinical-spec §2: a doseRange 75–150 mg once daily is counted at its low end, 75 mg/day
    d = dosage(None, "mg", low=75, frequency=1, period=1, period_unit="d")
    d["doseAndRate"][0]["doseRange"]["high"] = {"value": 150, "unit": "mg"}
    assert daily_dose(terminology, order(SERTRALINE, dose=d)) == 75.0


def test_statement_dose_is_read_from_dosage(terminology: Terminology) -> None:
    # MedicationStatement.dosage: 2 × 25 mg tablets (RxNorm 312940) twice a day = 100 mg/day
    record, _ = facts(terminology, [statement("312940", "2025-01-01", "2025-03-01",
                                              dose=dosage(2, "tablet", code="BID"))])
    assert [e.daily_dose for e in record.exposures] == [100.0]


def test_tablets_of_an_ingredient_code_have_no_strength_so_the_dose_is_unknown(terminology: Terminology) -> None:
    # ingredient RXCUI 36437 says nothing about tablet strength: 1 tablet BID cannot be turned into mg
    assert daily_dose(terminology, order(SERTRALINE, dose=dosage(1, "tablet", code="BID"))) is None


def test_unknown_dose_unit_is_reported_and_the_dose_is_unknown(terminology: Terminology) -> None:
    record, warnings = facts(terminology, [order(SERTRALINE, dose=dosage(2, "spoonful"), rid="spoon")])
    assert record.exposures[0].daily_dose is None
    [w] = warnings_with(warnings, "unknown-unit")
    assert w.resource == "MedicationRequest/spoon"
    assert "'spoonful'" in w.message
    assert w.element == "MedicationRequest.dosageInstruction[0].doseAndRate.doseQuantity"


def test_absurd_dose_is_reported_and_treated_as_unknown(terminology: Terminology) -> None:
    # 50,000 mg/day of sertraline is > 20 × the 50 mg minimum (absurd_dose_factor): a data error
    record, warnings = facts(terminology, [order(SERTRALINE, dose=dosage(50000, "mg"), rid="huge")])
    assert record.exposures[0].daily_dose is None
    [w] = warnings_with(warnings, "implausible-dose")
    assert w.resource == "MedicationRequest/huge"
    assert "50000 mg of sertraline" in w.message


def test_absurd_dose_warning_names_the_real_element(terminology: Terminology) -> None:
    _, warnings = facts(terminology, [order(SERTRALINE, dose=dosage(50000, "mg"), rid="huge")])
    [w] = warnings_with(warnings, "implausible-dose")
    assert w.element is not None and w.element.startswith("MedicationRequest.dosageInstruction")


def test_dispense_dose_is_quantity_times_strength_over_days_supply(terminology: Terminology) -> None:
    # 60 tablets of sertraline 100 mg for 30 days = 200 mg/day
    record, warnings = facts(terminology, [dispense(SERTRALINE_100_TAB, "2025-01-01", 30, quantity=60)])
    assert [(d.days_supply, d.daily_dose) for d in record.dispenses] == [(30, 200.0)]
    assert warnings == []


def test_dispense_without_days_supply_derives_it_from_quantity_and_dosage(terminology: Terminology) -> None:
    # 60 tablets at 1 tablet BID last 30 days
    d = dispense(SERTRALINE_100_TAB, "2025-01-01", None, quantity=60, dose=dosage(1, "tablet", code="BID"))
    record, _ = facts(terminology, [d])
    assert [(x.days_supply, x.daily_dose) for x in record.dispenses] == [(30, 200.0)]


def test_order_supply_is_expected_duration_times_one_plus_repeats(terminology: Terminology) -> None:
    # clinical-spec §2: expected supply 30 days × (1 + 2 repeats) = 90 days
    record, _ = facts(terminology, [order(SERTRALINE, days=30, repeats=2)])
    assert record.exposures[0].supply_days == 90
