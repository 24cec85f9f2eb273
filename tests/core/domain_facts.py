"""Builders of domain facts for the pure-core tests of the v2 rules (clinical-spec v2).

These tests feed the classifier the facts the inbound adapter produces (order reasons, bedtime/PRN,
assumed ends, session reasons, score timestamps), so each v2 rule is tested on its own worked example.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, UTC
from itertools import count

from fhirtrd.domain.classify import classify
from fhirtrd.domain.model import (
    Assessment,
    ConditionFact,
    Dispense,
    Measurement,
    MedicationExposure,
    PatientRecord,
    ProcedureEvent,
    Trial,
)
from fhirtrd.domain.rules import Rules

AS_OF = date(2025, 6, 30)
_ids = count(1)


def d(text: str) -> date:
    return date.fromisoformat(text)


def rx(ingredient: str, start: str, *, days: int | None = 90, dose: float | None = 100, end: str | None = None,
       active: bool = False, reasons: frozenset[str] = frozenset(), bedtime: bool = False, prn: bool = False,
       source: str = "request", end_assumed: bool = False) -> MedicationExposure:
    """An order (or statement) for one ingredient: `days` of supply from `start`."""
    return MedicationExposure(ingredient=ingredient, source=source, start=d(start), end=d(end) if end else None,
                              daily_dose=dose, ref=f"MedicationRequest/rx-{next(_ids)}", active=active,
                              supply_days=days, reasons=reasons, bedtime=bedtime, prn=prn, end_assumed=end_assumed)


def fill(ingredient: str, handed_over: str, days: int = 30, dose: float | None = 100) -> Dispense:
    return Dispense(ingredient, d(handed_over), days, dose, f"MedicationDispense/md-{next(_ids)}")


def fills(ingredient: str, first: str, n: int, every: int = 30, days: int = 30, dose: float | None = 100) -> list[Dispense]:
    return [fill(ingredient, (d(first) + timedelta(days=every * i)).isoformat(), days, dose) for i in range(n)]


def phq9(value: float, when: str, *, instant: datetime | None = None, issued: datetime | None = None,
         concept: str = "phq9") -> Measurement:
    return Measurement(concept, value, d(when), f"Observation/obs-{next(_ids)}", instant, issued)


def at(when: str, hour: int, minute: int = 0) -> datetime:
    day = d(when)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def condition(concept: str = "mdd", onset: str = "2024-01-01", abatement: str | None = None,
              active: bool = True, *extra: str) -> ConditionFact:
    return ConditionFact(frozenset({concept, *extra}), d(onset), d(abatement) if abatement else None, active,
                         f"Condition/c-{next(_ids)}")


def session(concept: str, when: str, reasons: frozenset[str] = frozenset()) -> ProcedureEvent:
    return ProcedureEvent(concept, d(when), f"Procedure/pr-{next(_ids)}", reasons=reasons)


def sessions(concept: str, first: str, n: int, every: int = 7, reasons: frozenset[str] = frozenset()
             ) -> list[ProcedureEvent]:
    return [session(concept, (d(first) + timedelta(days=every * i)).isoformat(), reasons) for i in range(n)]


def run(rules: Rules, *facts: object, as_of: date = AS_OF) -> dict[str, Assessment]:
    """Classify one patient's facts; the assessments by disorder."""
    record = PatientRecord(
        patient="Patient/p1",
        exposures=tuple(f for f in facts if isinstance(f, MedicationExposure)),
        dispenses=tuple(f for f in facts if isinstance(f, Dispense)),
        procedures=tuple(f for f in facts if isinstance(f, ProcedureEvent)),
        conditions=tuple(f for f in facts if isinstance(f, ConditionFact)),
        measurements=tuple(f for f in facts if isinstance(f, Measurement)))
    return {a.disorder: a for a in classify(record, rules, as_of)}


def trial(a: Assessment, treatment: str) -> Trial:
    [t] = [t for t in a.trials if t.treatment == treatment]
    return t
