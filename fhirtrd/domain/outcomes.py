"""Outcome of a trial from baseline/endpoint scores, and where the current episode starts (clinical-spec §3).

Sources: baseline/endpoint windows, categories and failure (seed; clinical-spec §3); remission
cut-offs and response thresholds per instrument in mappings/instruments.csv; ≥ 8 weeks of
remission scores end an episode (ATHF: 2 months of euthymia). v2: ≥ 12 months between the end of
one treatment and the start of the next starts a new episode at that treatment, and a recorded MDD
Condition whose onset follows an earlier Condition's abatement starts one at that onset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.model import Measurement
from fhirtrd.domain.rules import Instrument
from fhirtrd.domain.trials import Course


@dataclass(frozen=True, slots=True)
class Outcome:
    category: str
    change: float | None
    instrument: str | None
    baseline: Measurement | None
    endpoint: Measurement | None


def outcome(facts: Facts, c: Course, disorder: str) -> Outcome:
    """The highest-priority instrument with a baseline/endpoint pair; CGI-I as a fallback."""
    rules = facts.rules
    b_from = c.start - timedelta(days=int(rules.t("baseline_before_days")))
    b_to = c.start + timedelta(days=int(rules.t("baseline_after_days")))
    e_from = c.start + timedelta(days=int(rules.t("endpoint_after_start_days")))
    e_to = min(facts.as_of, c.end + timedelta(days=int(rules.t("endpoint_after_end_days"))))
    for inst in facts.instruments(disorder):
        series = facts.scores.get(inst.key, [])
        base = [m for m in series if b_from <= m.when <= b_to]
        end = [m for m in series if e_from <= m.when <= e_to]
        if base and end and end[-1].when > base[-1].when:
            b, e = base[-1], end[-1]
            change = (b.value - e.value) / b.value if b.value > 0 else None
            return Outcome(category(facts, inst, e.value, change), change, inst.key, b, e)
    cgi = [m for m in facts.scores.get("cgi-i", []) if e_from <= m.when <= e_to]
    if cgi:
        v = cgi[-1].value
        cat = "response" if v <= 2 else "partial-response" if v == 3 else "nonresponse"
        return Outcome(cat, None, "cgi-i", None, cgi[-1])
    return Outcome("unknown", None, None, None, None)


def category(facts: Facts, inst: Instrument, endpoint: float, change: float | None) -> str:
    """remission (endpoint ≤ cut-off), response, partial-response (25–49 %), nonresponse (seed)."""
    if inst.remission_max is not None and endpoint <= inst.remission_max:
        return "remission"
    if change is None:
        return "nonresponse"
    if inst.response_min_change is not None and change >= inst.response_min_change:
        return "response"
    if change >= facts.rules.t("partial_response_min_change"):
        return "partial-response"
    return "nonresponse"


def episode_boundary(facts: Facts, disorder: str, treatments: list[Course]) -> date | None:
    """Start of the current episode, the latest of the three rules below (None: one episode).

    `treatments` are the disorder's antidepressant, psychotherapy, ECT and advanced courses.
    """
    found = [d for d in (remission_boundary(facts, disorder), treatment_gap_boundary(facts, treatments),
                         condition_boundary(facts, disorder)) if d is not None and d <= facts.as_of]
    return max(found) if found else None


def treatment_gap_boundary(facts: Facts, treatments: list[Course]) -> date | None:
    """The start of the latest treatment that began ≥ 12 months after every earlier one had ended (v2).

    The time after the last treatment up to the as-of date never ends an episode by itself.
    """
    gap = int(facts.rules.t("episode_treatment_gap_days"))
    boundary = None
    ended: date | None = None
    for c in sorted(treatments, key=lambda c: (c.start, c.end)):
        if ended is not None and (c.start - ended).days >= gap:
            boundary = c.start
        ended = c.end if ended is None else max(ended, c.end)
    return boundary


def condition_boundary(facts: Facts, disorder: str) -> date | None:
    """The latest onset of a recorded MDD Condition after an earlier Condition's abatement (v2)."""
    if disorder != "mdd":
        return None
    conditions = facts.conditions("mdd")
    abated = [c.abatement for c in conditions if c.abatement is not None]
    onsets = [c.onset for c in conditions if c.onset is not None and any(a < c.onset for a in abated)]
    return max(onsets) if onsets else None


def remission_boundary(facts: Facts, disorder: str) -> date | None:
    """A relapse after ≥ 8 weeks of remission scores (None: no such relapse).

    A remission that lasts to the latest score is not a new episode: the patient is still in the
    episode that remitted, so its trials stay current (the next step is then `continue`).
    """
    cut = {i.key: i.remission_max for i in facts.instruments(disorder)}
    series = sorted((m for k in cut for m in facts.scores.get(k, [])), key=lambda m: m.when)
    need = int(facts.rules.t("remission_episode_end_days"))
    boundary = None
    run_start: date | None = None
    run_end: date | None = None
    for m in series:
        limit = cut[m.concept]
        if limit is not None and m.value <= limit:
            run_start = run_start or m.when
            run_end = m.when
            continue
        if run_start is not None and run_end is not None and (run_end - run_start).days >= need:
            boundary = run_end + timedelta(days=1)
        run_start = run_end = None
    return boundary
