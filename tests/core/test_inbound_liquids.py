"""Liquid doses: a dose in mL × the product's strength per mL is a dose in mg (clinical-spec §2 v2)."""

from __future__ import annotations

import pytest

from fhirtrd.terminology import Terminology

from .conftest import SERTRALINE, dispense, dosage, facts, mdd, order, patient, warnings_with

#: sertraline 20 MG/ML Oral Solution (RxNorm SCD 861064, mappings/medication_products.csv: 20 mg/mL)
SERTRALINE_SOLUTION = "861064"
#: fluoxetine 4 MG/ML Oral Solution (RxNorm SCD 310386: 4 mg/mL)
FLUOXETINE_SOLUTION = "310386"


@pytest.mark.parametrize(("product", "volume", "unit", "mg"), [
    (SERTRALINE_SOLUTION, 5, "mL", 100.0),  # 5 mL × 20 mg/mL
    (SERTRALINE_SOLUTION, 2.5, "ml", 50.0),
    (FLUOXETINE_SOLUTION, 5, "mL", 20.0),   # 5 mL × 4 mg/mL
    (FLUOXETINE_SOLUTION, 0.005, "L", 20.0),
])
def test_a_dose_in_ml_is_the_volume_times_the_strength_per_ml(terminology: Terminology, product: str,
                                                              volume: float, unit: str, mg: float) -> None:
    record, _ = facts(terminology, [patient(), mdd(), order(product, dose=dosage(volume, unit))])
    assert [e.daily_dose for e in record.exposures] == [mg]


def test_twice_daily_liquid_doses_add_up(terminology: Terminology) -> None:
    record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE_SOLUTION, dose=dosage(2.5, "mL", frequency=2))])
    assert [e.daily_dose for e in record.exposures] == [100.0]


def test_a_dose_in_ml_of_a_product_without_a_strength_per_ml_is_unknown_and_says_so(
        terminology: Terminology) -> None:
    """An ingredient code has no strength per mL: reading 5 mL as 5 mg would make a false inadequate dose."""
    record, warnings = facts(terminology, [patient(), mdd(), order(SERTRALINE, dose=dosage(5, "mL"), rid="rx-ml")])
    assert [e.daily_dose for e in record.exposures] == [None]
    [w] = warnings_with(warnings, "unknown-strength")
    assert w.resource == "MedicationRequest/rx-ml" and "mL" in w.message and "sertraline" in w.message


def test_a_tablet_count_is_not_multiplied_by_a_strength_per_ml(terminology: Terminology) -> None:
    record, _ = facts(terminology, [patient(), mdd(), order(SERTRALINE_SOLUTION, dose=dosage(1, "tablet"))])
    assert [e.daily_dose for e in record.exposures] == [None]


def test_a_dispensed_volume_lasts_volume_over_daily_volume_and_gives_the_daily_dose(
        terminology: Terminology) -> None:
    """150 mL at 5 mL a day lasts 30 days; without a dosage, 150 mL × 20 mg/mL over 30 days is 100 mg/day."""
    with_dosage = dispense(SERTRALINE_SOLUTION, days=None, quantity=150, unit="mL", dose=dosage(5, "mL"))
    record, _ = facts(terminology, [patient(), mdd(), with_dosage])
    assert [(d.days_supply, d.daily_dose) for d in record.dispenses] == [(30, 100.0)]
    volume_only = dispense(SERTRALINE_SOLUTION, days=30, quantity=150, unit="mL")
    record, _ = facts(terminology, [patient(), mdd(), volume_only])
    assert [(d.days_supply, d.daily_dose) for d in record.dispenses] == [(30, 100.0)]
