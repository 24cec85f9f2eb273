"""Scope: which disorders are assessed for a patient, recorded or inferred (clinical-spec §1)."""

from __future__ import annotations

from fhirtrd.domain.facts import Facts


def scope(facts: Facts, disorder: str) -> str | None:
    """"recorded", "inferred" or None (not in scope).

    MDD or SAD is in scope with an active Condition; MDD is inferred from antidepressant trials with
    depression scores when no diagnosis is recorded (clinical-spec §1).
    """
    if facts.conditions(disorder, active_only=True):
        return "recorded"
    has_scores = any(facts.scores.get(i.key) for i in facts.instruments(disorder))
    if disorder == "sad":
        return "recorded" if facts.conditions("sad") and has_scores else None
    treated = any(c.kind == "medication" and facts.role(c) == "antidepressant" for c in facts.courses)
    if treated and has_scores:
        return "recorded" if facts.conditions("mdd") else "inferred"
    return None
