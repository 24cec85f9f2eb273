"""Trial windows, stitching, dose segments and adherence (clinical-spec §2, §2.1)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhirtrd.domain.model import Assessment
from fhirtrd.terminology import Terminology

from .conftest import (
    AS_OF,
    SERTRALINE,
    SERTRALINE_100_TAB,
    assess,
    assessment,
    dispense,
    dosage,
    mdd,
    order,
    statement,
    trials,
)


def mdd_assessment(terminology: Terminology, resources: list[dict[str, Any]], as_of: date = AS_OF) -> Assessment:
    return assessment(assess(terminology, [mdd(), *resources], as_of))


def windows(a: Assessment) -> list[tuple[date, date]]:
    return [(t.start, t.end) for t in trials(a, "sertraline")]


# --- stitching ---------------------------------------------------------------------------------


def test_successive_orders_with_a_14_day_gap_are_one_trial(terminology: Terminology) -> None:
    # §2: first order covers 1–30 Jan, the next starts 14 Feb: 14 days without supply → merged
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01"), order(SERTRALINE, "2025-02-14")])
    assert windows(a) == [(date(2025, 1, 1), date(2025, 3, 15))]
    # the 14 uncovered days are not counted as weeks at an adequate dose: 60 days ≈ 8.6 weeks
    assert trials(a)[0].weeks_adequate == 8.6


def test_a_20_day_gap_splits_into_two_trials(terminology: Terminology) -> None:
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01"), order(SERTRALINE, "2025-02-20")])
    assert windows(a) == [(date(2025, 1, 1), date(2025, 1, 30)), (date(2025, 2, 20), date(2025, 3, 21))]
    # each 30-day piece is too short on its own (§2.1: ≥ 6 weeks)
    assert all("inadequate-duration" in t.findings and not t.adequate for t in trials(a))


def test_stopped_order_is_cut_short_by_the_next_order(terminology: Terminology) -> None:
    # a 90-day order stopped and replaced on 1 Feb by a 150 mg order: the 100 mg segment ends 31 Jan
    a = mdd_assessment(terminology, [
        order(SERTRALINE, "2025-01-01", days=90, status="stopped"),
        order(SERTRALINE, "2025-02-01", days=30, dose=dosage(150))])
    [t] = trials(a)
    assert (t.start, t.end) == (date(2025, 1, 1), date(2025, 3, 2))
    assert [(s.start, s.end, s.daily_dose) for s in t.segments] == [
        (date(2025, 1, 1), date(2025, 1, 31), 100.0), (date(2025, 2, 1), date(2025, 3, 2), 150.0)]


def test_active_order_without_supply_is_open_to_the_as_of_date(terminology: Terminology) -> None:
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01", days=None, status="active")])
    [t] = trials(a)
    assert (t.start, t.end, t.ongoing) == (date(2025, 1, 1), AS_OF, True)


def test_medication_statement_alone_makes_a_trial(terminology: Terminology) -> None:
    a = mdd_assessment(terminology, [statement(SERTRALINE, "2025-01-01", "2025-03-31")])
    [t] = trials(a)
    assert (t.start, t.end, t.adequate, t.ongoing) == (date(2025, 1, 1), date(2025, 3, 31), True, False)


def test_not_taken_statement_is_not_exposure(terminology: Terminology) -> None:
    a = mdd_assessment(terminology, [statement(SERTRALINE, "2025-01-01", "2025-03-31", status="not-taken")])
    assert trials(a) == []


def test_dispenses_alone_define_the_window(terminology: Terminology) -> None:
    # §2: a drug with dispenses and no order or statement: whenHandedOver + daysSupply make the window
    a = mdd_assessment(terminology, [
        dispense(SERTRALINE_100_TAB, "2025-01-01", 30, quantity=30),
        dispense(SERTRALINE_100_TAB, "2025-01-31", 30, quantity=30)])
    [t] = trials(a)
    assert (t.start, t.end, t.pdc, t.adherence, t.daily_dose) == (date(2025, 1, 1), date(2025, 3, 1), 1.0, "ok", 100.0)


def test_dose_change_makes_two_segments_and_only_the_adequate_one_counts(terminology: Terminology) -> None:
    # 30 days at 25 mg (below the 50 mg minimum, §7) then 60 days at 100 mg
    a = mdd_assessment(terminology, [
        order(SERTRALINE, "2025-01-01", days=30, dose=dosage(25)),
        order(SERTRALINE, "2025-01-31", days=60, dose=dosage(100))])
    [t] = trials(a)
    assert [(s.daily_dose, (s.end - s.start).days + 1) for s in t.segments] == [(25.0, 30), (100.0, 60)]
    assert t.weeks_adequate == round(60 / 7, 1)
    assert t.daily_dose == 100.0 and t.adequate


def test_five_weeks_at_adequate_dose_after_a_low_start_is_not_adequate(terminology: Terminology) -> None:
    # 60 days at 25 mg + 35 days at 100 mg: 95 days on the drug but only 5 weeks at ≥ 50 mg
    a = mdd_assessment(terminology, [
        order(SERTRALINE, "2025-01-01", days=60, dose=dosage(25)),
        order(SERTRALINE, "2025-03-02", days=35, dose=dosage(100))])
    [t] = trials(a)
    assert t.weeks_adequate == 5.0
    assert not t.adequate and "inadequate-duration" in t.findings


def test_dose_below_the_minimum_is_inadequate_dose(terminology: Terminology) -> None:
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01", days=90, dose=dosage(25))])
    [t] = trials(a)
    assert t.findings == ("inadequate-dose",) and not t.adequate


# --- adherence (proportion of days covered) ----------------------------------------------------


def test_90_day_prescription_with_one_30_day_fill_is_33_percent(terminology: Terminology) -> None:
    # clinical-spec §2: "a prescription for 90 days with one 30-day fill is a 90-day window at 33 %"
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01", days=90),
                                     dispense(SERTRALINE_100_TAB, "2025-01-01", 30)])
    [t] = trials(a)
    assert (t.start, t.end) == (date(2025, 1, 1), date(2025, 3, 31))
    assert t.pdc is not None and abs(t.pdc - 1 / 3) < 0.001
    assert t.adherence == "poor" and "nonadherence" in t.findings and not t.adequate
    assert "nonadherence" in a.pseudo_resistance
    assert a.next_step.strategy == "address-pseudo-resistance"


def test_early_refills_are_carried_forward(terminology: Terminology) -> None:
    # 60-day window; fills on 1 Jan and 20 Jan (30 days each). Counting overlap once would give
    # 49/60 days; carrying the early refill forward covers all 60 days.
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01", days=60),
                                     dispense(SERTRALINE_100_TAB, "2025-01-01", 30),
                                     dispense(SERTRALINE_100_TAB, "2025-01-20", 30)])
    [t] = trials(a)
    assert t.pdc == 1.0 and t.adherence == "ok"


def test_pdc_of_at_least_80_percent_is_adherent(terminology: Terminology) -> None:
    # 90-day window, fills of 30 + 30 + 15 days = 75 days = 0.83 ≥ 0.80 (seed)
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01", days=90),
                                     dispense(SERTRALINE_100_TAB, "2025-01-01", 30),
                                     dispense(SERTRALINE_100_TAB, "2025-01-31", 30),
                                     dispense(SERTRALINE_100_TAB, "2025-03-02", 15)])
    [t] = trials(a)
    assert t.pdc is not None and abs(t.pdc - 75 / 90) < 0.001
    assert t.adherence == "ok" and t.adequate and "nonadherence" not in t.findings
    assert "adherence-unverified" not in a.caveats


def test_no_dispenses_means_adherence_unknown_with_a_caveat(terminology: Terminology) -> None:
    a = mdd_assessment(terminology, [order(SERTRALINE, "2025-01-01", days=90)])
    [t] = trials(a)
    assert (t.adherence, t.pdc, t.adequate) == ("unknown", None, True)
    assert "adherence-unverified" in a.caveats
