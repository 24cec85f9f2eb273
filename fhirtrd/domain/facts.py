"""The patient's facts prepared once for every clinical question: scores by concept, courses, helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fhirtrd.domain.model import ConditionFact, Measurement, PatientRecord
from fhirtrd.domain.rules import Instrument, Rules
from fhirtrd.domain.trials import Course


def score_key(m: Measurement) -> tuple[date, float, float, str]:
    """Scores in time order: date, full timestamp, then `issued` (clinical-spec §3 v2); id last, for ties."""
    never = float("-inf")
    return (m.when, m.instant.timestamp() if m.instant else never,
            m.issued.timestamp() if m.issued else never, m.ref)


@dataclass(frozen=True)
class Facts:
    """One patient's record, the rules, the as-of date, scores by concept and treatment courses."""

    record: PatientRecord
    rules: Rules
    as_of: date
    scores: dict[str, list[Measurement]]
    courses: list[Course]

    @property
    def lookback(self) -> date:
        """Start of the window for recent labs (TSH, CRP; clinical-spec §6)."""
        return self.as_of - timedelta(days=int(self.rules.t("lab_lookback_days")))

    def conditions(self, concept: str, *, active_only: bool = False) -> list[ConditionFact]:
        return [c for c in self.record.conditions if concept in c.concepts and (c.active or not active_only)]

    def instruments(self, disorder: str) -> list[Instrument]:
        """The disorder's outcome instruments (those with a remission cut-off), preferred first."""
        return sorted((i for i in self.rules.instruments.values()
                       if i.disorder == disorder and i.remission_max is not None), key=lambda i: i.priority)

    def role(self, c: Course) -> str:
        drug = self.rules.drug(c.treatment)
        return drug.role if drug else c.kind

    def treatment_class(self, c: Course) -> str:
        if c.kind == "ect":
            return "ECT"
        if c.kind == "psychotherapy":
            return "psychotherapy"
        if c.kind == "rtms":
            return "rTMS"
        return self.rules.drugs[c.treatment].drug_class
