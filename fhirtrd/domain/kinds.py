"""What each course is for a disorder: medication, augmentation, psychotherapy or ECT (clinical-spec §2).

Source: clinical-spec §2 — a non-antidepressant augmenting agent (lithium, second-generation
antipsychotic, liothyronine) overlapping an ongoing antidepressant trial by ≥ 14 days is augmentation.
"""

from __future__ import annotations

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.trials import Course


def counts_for(facts: Facts, c: Course, disorder: str) -> bool:
    """Whether a course is a treatment of the disorder at all."""
    if c.kind == "psychotherapy":
        return True
    if c.kind == "ect":
        return disorder == "mdd"
    drug = facts.rules.drugs[c.treatment]
    if disorder == "mdd":
        return drug.role in ("antidepressant", "augmentation")
    return bool(drug.sad_line)


def trial_kinds(facts: Facts, courses: list[Course], disorder: str) -> dict[int, str]:
    """Kind of each course by id(): medication / psychotherapy / ect / augmentation."""
    overlap = int(facts.rules.t("augmentation_min_overlap_days"))
    kinds: dict[int, str] = {}
    for c in courses:
        if c.kind != "medication":
            kinds[id(c)] = c.kind
        elif facts.role(c) == "augmentation" or disorder == "mdd" and any(
                o is not c and o.kind == "medication" and facts.role(o) == "antidepressant"
                and o.start < c.start and (min(o.end, c.end) - c.start).days + 1 >= overlap
                and kinds.get(id(o)) == "medication"
                for o in courses):
            kinds[id(c)] = "augmentation"
        else:
            kinds[id(c)] = "medication"
    return kinds
