"""Order windows, dose timing flags and order reasons as the inbound adapter reads them (clinical-spec §2 v2)."""

from __future__ import annotations

from datetime import date

from fhirtrd.terminology import Terminology

from .conftest import ICD10, SERTRALINE, concept, condition, dosage, facts, mdd, order, patient

STATUS_CHANGED = "http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationRequest.statusChanged"


def _exposure(terminology: Terminology, *resources: dict):
    record, _ = facts(terminology, [patient(), mdd(), *resources])
    [exposure] = record.exposures
    return exposure


def test_a_stopped_order_ends_at_its_validity_end_before_the_supply_ends(terminology: Terminology) -> None:
    """§2 v2: a discontinued order's validityPeriod.end (before the 90-day supply's end) is the stop date."""
    rx = order(SERTRALINE, "2025-01-01", days=90, status="stopped",
               dispenseRequest={"expectedSupplyDuration": {"value": 90, "code": "d"},
                                "validityPeriod": {"start": "2025-01-01", "end": "2025-02-10"}})
    e = _exposure(terminology, rx)
    assert (e.start, e.end, e.supply_days, e.stopped) == (date(2025, 1, 1), date(2025, 2, 10), 90, True)


def test_a_stopped_order_ends_at_its_status_change_date(terminology: Terminology) -> None:
    """§2 v2: else the status-change date (R5 MedicationRequest.statusChanged, cross-version extension)."""
    rx = order(SERTRALINE, "2025-01-01", days=90, status="stopped",
               extension=[{"url": STATUS_CHANGED, "valueDateTime": "2025-01-20T10:00:00Z"}])
    assert _exposure(terminology, rx).end == date(2025, 1, 20)
    cancelled = order(SERTRALINE, "2025-01-01", days=None, status="cancelled",
                      extension=[{"url": STATUS_CHANGED, "valueDateTime": "2025-01-05"}])
    e = _exposure(terminology, cancelled)
    assert (e.end, e.stopped, e.end_assumed) == (date(2025, 1, 5), True, False)


def test_validity_is_not_a_stop_date_for_completed_or_active_orders(terminology: Terminology) -> None:
    """§2 v2: for completed/active orders validityPeriod is how long it may be dispensed, not an end."""
    rx = order(SERTRALINE, "2025-01-01", days=None, status="completed",
               dispenseRequest={"validityPeriod": {"start": "2025-01-01", "end": "2025-01-15"}})
    e = _exposure(terminology, rx)
    assert (e.end, e.supply_days, e.end_assumed) == (None, None, False)


def test_an_active_order_without_supply_or_end_is_marked_assumed(terminology: Terminology) -> None:
    """§2 v2: an active order with no supply and no end gets `end_assumed` (the classifier caps it)."""
    e = _exposure(terminology, order(SERTRALINE, "2025-01-01", days=None, status="active"))
    assert (e.end, e.supply_days, e.active, e.end_assumed) == (None, None, True, True)
    with_supply = _exposure(terminology, order(SERTRALINE, "2025-01-01", days=30, status="active"))
    assert with_supply.end_assumed is False


def test_bounds_period_end_cuts_the_window_whatever_the_status(terminology: Terminology) -> None:
    dose = dosage(100)
    dose["timing"]["repeat"]["boundsPeriod"] = {"start": "2025-01-01", "end": "2025-01-31"}
    e = _exposure(terminology, order(SERTRALINE, "2025-01-01", days=None, status="active", dose=dose))
    assert (e.end, e.end_assumed) == (date(2025, 1, 31), False)


def test_bedtime_and_as_needed_doses_are_flagged(terminology: Terminology) -> None:
    """§2 v2 adjuncts: a bedtime dose (timing.code HS or when HS) and a PRN dose (asNeeded)."""
    hs = _exposure(terminology, order(SERTRALINE, dose=dosage(50, code="HS")))
    assert (hs.bedtime, hs.prn) == (True, False)
    when = dosage(50)
    when["timing"]["repeat"]["when"] = ["HS"]
    when["asNeededBoolean"] = True
    e = _exposure(terminology, order(SERTRALINE, dose=when))
    assert (e.bedtime, e.prn, e.daily_dose) == (True, True, 50)
    plain = _exposure(terminology, order(SERTRALINE))
    assert (plain.bedtime, plain.prn) == (False, False)


def test_order_reasons_come_from_reason_code_and_referenced_conditions(terminology: Terminology) -> None:
    """reasonCode → conditions/indications tables; reasonReference → the patient's own Condition."""
    migraine = order(SERTRALINE, "2025-01-01", reasonCode=[concept("G43.909", ICD10)])
    assert _exposure(terminology, migraine).reasons == frozenset({"migraine"})
    fibro = condition("M79.7", ICD10, rid="c-fibro")
    by_ref = order(SERTRALINE, "2025-01-01", reasonReference=[{"reference": "Condition/c-fibro"}])
    assert _exposure(terminology, by_ref, fibro).reasons == frozenset({"fibromyalgia"})
    depression = condition("F33.1", ICD10, rid="c-mdd")
    for_mdd = order(SERTRALINE, "2025-01-01", reasonReference=[{"reference": "Condition/c-mdd"}])
    assert "mdd" in _exposure(terminology, depression, for_mdd).reasons  # the Condition may come after
    unknown = order(SERTRALINE, "2025-01-01", reasonReference=[{"reference": "Condition/not-there"}])
    assert _exposure(terminology, unknown).reasons == frozenset()
