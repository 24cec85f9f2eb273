"""What each course is: medication, augmentation (combination), adjunct, advanced, psychotherapy, ECT.

Sources (clinical-spec §2, v2):
- augmentation: a non-antidepressant augmenting agent (lithium, second-generation antipsychotic,
  liothyronine) overlapping an antidepressant trial; a second antidepressant that runs together with
  the first for more than `cross_taper_max_overlap_days` (28) is a combination, `kind: augmentation`
  with its class kept; the first ending within 28 days of the second's start is a switch
  (cross-taper). Two antidepressants started the same day are a combination and each is judged: the
  one at the higher dose relative to its minimum is the antidepressant trial, the other
  `kind: augmentation` (policy: one combination step, counted once; tie → name order).
- adjunct: trazodone ≤ 100, doxepin ≤ 25, mirtazapine < 15, amitriptyline/nortriptyline ≤ 50 mg/day
  (mappings/adjunct_doses.csv) at bedtime, PRN or alongside another antidepressant trial. The adjunct
  rule wins over every other rule: never judged, never a finding, never part of a combination.
- advanced: esketamine, ketamine (role `advanced` in mappings/medications.csv) and rTMS sessions.
"""

from __future__ import annotations

from datetime import timedelta

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.rules import Rules
from fhirtrd.domain.trials import Course


def _role(rules: Rules, c: Course) -> str:
    drug = rules.drug(c.treatment)
    return drug.role if drug and c.kind == "medication" else c.kind


def _relative_dose(rules: Rules, c: Course) -> float:
    drug = rules.drug(c.treatment)
    dose = c.max_dose
    if drug is None or not drug.min_daily_dose or dose is None:
        return 0.0
    return dose / drug.min_daily_dose


def mark_adjuncts(courses: list[Course], rules: Rules) -> None:
    """Flag low-dose hypnotic/analgesic courses as adjuncts (v2; this rule wins over every other)."""
    low = [c for c in courses if c.kind == "medication" and rules.is_adjunct_dose(c.treatment, c.max_dose)]
    full = [c for c in courses if c.kind == "medication" and _role(rules, c) == "antidepressant" and c not in low]
    for c in low:
        alongside = any(o.treatment != c.treatment and o.start <= c.end and c.start <= o.end for o in full)
        c.adjunct = c.bedtime or c.prn or alongside


def switchable(courses: list[Course], rules: Rules) -> set[int]:
    """id() of the antidepressant courses that take part in switches and combinations (not adjuncts)."""
    return {id(c) for c in courses
            if c.kind == "medication" and not c.adjunct and _role(rules, c) == "antidepressant"}


def counts_for(facts: Facts, c: Course, disorder: str) -> bool:
    """Whether a course is a treatment of the disorder at all (psychotherapy by its reasons, §2.1 v2)."""
    if c.kind == "psychotherapy":
        return True
    if c.kind in ("ect", "rtms"):
        return disorder == "mdd"
    drug = facts.rules.drugs[c.treatment]
    if disorder == "mdd":
        return drug.role in ("antidepressant", "augmentation", "advanced")
    return bool(drug.sad_line)


def trial_kinds(facts: Facts, courses: list[Course], disorder: str) -> dict[int, str]:
    """Kind of each course by id(): medication / psychotherapy / ect / augmentation / adjunct / advanced."""
    rules = facts.rules
    taper = timedelta(days=int(rules.t("cross_taper_max_overlap_days")))
    kinds: dict[int, str] = {}
    for c in sorted(courses, key=lambda c: (c.start, -_relative_dose(rules, c), c.treatment)):
        role = _role(rules, c)
        if c.kind == "rtms" or role == "advanced":
            kinds[id(c)] = "advanced"
        elif c.kind != "medication":
            kinds[id(c)] = c.kind
        elif c.adjunct:
            kinds[id(c)] = "adjunct"
        elif role == "augmentation":
            kinds[id(c)] = "augmentation"
        elif disorder == "mdd" and role == "antidepressant" and any(
                kinds.get(id(o)) == "medication" and _role(rules, o) == "antidepressant"
                and (o.start == c.start or o.start < c.start <= o.end and o.end > c.start + taper)
                for o in courses if o is not c):
            kinds[id(c)] = "augmentation"  # a combination: both run together beyond a cross-taper
        else:
            kinds[id(c)] = "medication"
    return kinds
