"""Inflammation, subtype hints and the STAR*D next-step likelihood (seed; clinical-spec §6).

Sources: CRP > 3 mg/L elevated, > 10 indeterminate (Osimo 2019; seed); anxious (anxiety disorder or
GAD-7 ≥ 10) and anhedonic (PHQ-9 item 1 ≥ 2) hints (seed); P(remission) by prior failed steps
(STAR*D, Rush 2006) and expected utility (SAD seed).
"""

from __future__ import annotations

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.model import Likelihood


def inflammation(facts: Facts) -> tuple[str, tuple[str, ...]]:
    for concept in ("hscrp", "crp"):
        recent = [m for m in facts.scores.get(concept, []) if m.when >= facts.lookback]
        if recent:
            v = recent[-1]
            if v.value > facts.rules.t("crp_indeterminate_above"):
                return "indeterminate", (v.ref,)
            return ("elevated" if v.value > facts.rules.t("crp_elevated_above") else "not-elevated"), (v.ref,)
    return "unknown", ()


def subtypes(facts: Facts) -> tuple[str, ...]:
    out = []
    gad = facts.scores.get("gad7", [])
    if facts.conditions("anxiety", active_only=True) or facts.conditions("sad", active_only=True) or (
            gad and gad[-1].value >= facts.rules.t("gad7_anxious_min")):
        out.append("anxious")
    item1 = facts.scores.get("phq9-item1", [])
    if item1 and item1[-1].value >= facts.rules.t("phq9_item_positive_min"):
        out.append("anhedonic")
    return tuple(out)


def likelihood(facts: Facts, failures: int) -> Likelihood:
    table = facts.rules.stard_p_remission
    steps = min(failures, len(table) - 1)
    p = table[steps]
    p_burden = facts.rules.t("p_burden")
    eu = p * facts.rules.t("utility_remission") - p_burden * facts.rules.t("utility_burden")
    return Likelihood(p_remission=p, p_burden=p_burden, expected_utility=round(eu, 4),
                      prior_failed_steps=failures, source="STAR*D (Rush 2006) by prior failed steps")
