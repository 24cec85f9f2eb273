"""Scope: which disorders are assessed for a patient, recorded or inferred (clinical-spec §1).

Sources: MDD or SAD is in scope with an active (or recurrent) Condition. v2: with no diagnosis
recorded, MDD is inferred only from an antidepressant trial (not an adjunct) whose order names no
non-depressive indication, with a depression score at or above the instrument's moderate band
(PHQ-9 ≥ 10, HAM-D ≥ 17, MADRS ≥ 20, QIDS ≥ 11, BDI-II ≥ 20; mappings/instrument_bands.csv) in
that trial's baseline window. PHQ-9 is a universal screen: 5–9 is mild, not an episode (Kroenke 2001).
"""

from __future__ import annotations

from datetime import date, timedelta

from fhirtrd.domain.adequacy import non_depressive
from fhirtrd.domain.facts import Facts
from fhirtrd.domain.rules import Instrument

MODERATE_MSM_POINTS = 3  # the Maudsley severity points of the "moderate" band (Fekadu 2009)


def moderate_minimum(inst: Instrument) -> float | None:
    """The lowest score of the instrument's moderate band (the band worth 3 MSM points)."""
    lows = [b.low for b in inst.bands if b.msm_points is not None and b.msm_points >= MODERATE_MSM_POINTS]
    return min(lows) if lows else None


def scope(facts: Facts, disorder: str) -> str | None:
    """"recorded", "inferred" or None (not in scope)."""
    if facts.conditions(disorder, active_only=True):
        return "recorded"
    has_scores = any(facts.scores.get(i.key) for i in facts.instruments(disorder))
    if disorder == "sad":
        return "recorded" if facts.conditions("sad") and has_scores else None
    treated = [c for c in facts.courses if c.kind == "medication" and facts.role(c) == "antidepressant"]
    if facts.conditions("mdd"):
        return "recorded" if treated and has_scores else None
    return "inferred" if any(_moderate_baseline(facts, c.start) for c in treated
                             if not c.adjunct and not non_depressive(facts, c)) else None


def _moderate_baseline(facts: Facts, start: date) -> bool:
    rules = facts.rules
    b_from = start - timedelta(days=int(rules.t("baseline_before_days")))
    b_to = start + timedelta(days=int(rules.t("baseline_after_days")))
    for inst in facts.instruments("mdd"):
        minimum = moderate_minimum(inst)
        if minimum is not None and any(b_from <= m.when <= b_to and m.value >= minimum
                                       for m in facts.scores.get(inst.key, [])):
            return True
    return False
