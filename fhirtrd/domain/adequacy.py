"""One course judged as a trial: adequacy, intolerance, outcome and failure (clinical-spec §2.1–§3).

Sources: adequate = dose ≥ the MGH-ATRQ minimum, ≥ 6 weeks at that dose, adherence ≥ 80 % (seed;
ATHF; MGH-ATRQ); psychotherapy ≥ 12 sessions (seed), ECT ≥ 6 (policy); lithium by serum level
(clinical-spec §7); intolerance from a stop reason, an intolerance record or hyponatraemia during an
SSRI/SNRI (seed, §2.2); failure = an adequate trial that did not remit (seed), inferred when an
adequate trial without scores was followed by another treatment (policy, §3) — v2: only when the next
treatment started within 30 days of its end, the trial lasted < 26 weeks and belongs to the current
episode. v2: adjuncts are never judged; an MDD trial whose order names a non-depressive indication
(§1) is listed with `non-depressive-indication` and counts for nothing; advanced courses are adequate
with enough sessions (esketamine ≥ 8, rTMS ≥ 20; ketamine 6, policy) and in progress while the last
session is within 14 days of the as-of date or the order is active.
"""

from __future__ import annotations

from datetime import date, timedelta

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.model import Trial
from fhirtrd.domain.outcomes import outcome
from fhirtrd.domain.trials import Course


def judge(facts: Facts, c: Course, kind: str, disorder: str, all_courses: list[Course],
          episode_start: date | None) -> Trial:
    """The trial this course is for the disorder."""
    rules = facts.rules
    if kind == "adjunct" or (disorder == "mdd" and non_depressive(facts, c)):
        return unjudged(facts, c, kind, disorder)
    if kind == "advanced":
        return advanced(facts, c, disorder, episode_start)
    findings: list[str] = []
    caveats: list[str] = ["window-assumed"] if c.window_assumed else []
    evidence = list(c.refs)
    weeks = 0.0
    adherence = "not-applicable"
    drug = rules.drug(c.treatment)
    minimum = drug.min_daily_dose if drug else None
    adequate_weeks = rules.t("adequate_weeks")

    if c.kind == "medication":
        assert drug is not None
        max_dose = c.max_dose
        if c.treatment == "lithium":
            dose_ok, weeks = lithium_ok(facts, c, evidence)
        elif minimum is None:
            dose_ok, weeks = True, (c.end - c.start).days / 7 + 1 / 7
        elif max_dose is None:
            dose_ok = False
            caveats.append("dose-unknown")
        else:
            dose_ok = max_dose >= minimum
            weeks = c.days_at_or_above(minimum) / 7
            if not dose_ok:
                findings.append("inadequate-dose")
        if c.pdc is None:
            adherence = "unknown"
        else:
            adherence = "ok" if c.pdc >= rules.t("adherence_min_pdc") else "poor"
            if adherence == "poor":
                findings.append("nonadherence")
        duration_ok = weeks >= adequate_weeks
        if dose_ok and not duration_ok and not c.ongoing:
            findings.append("inadequate-duration")
        adequate = dose_ok and duration_ok and adherence != "poor"
        if disorder == "sad" and not drug.sad_adequate:
            adequate = False
            findings.append("inadequate-agent")
        intolerance = None if adequate else intolerance_evidence(facts, c, drug.drug_class)
        if intolerance is not None:
            findings = [f for f in findings if f not in ("inadequate-dose", "inadequate-duration")]
            findings.append("intolerance")
            evidence.extend(intolerance)
    else:
        minimum_sessions = rules.t("psychotherapy_min_sessions" if c.kind == "psychotherapy" else "ect_min_sessions")
        adequate = (c.sessions or 0) >= minimum_sessions
        weeks = ((c.end - c.start).days + 1) / 7
        if not adequate and not c.ongoing and c.kind == "psychotherapy":
            findings.append("inadequate-psychotherapy")

    result = outcome(facts, c, disorder)
    for m in (result.baseline, result.endpoint):
        if m is not None:
            evidence.append(m.ref)
    failed = adequate and result.category not in ("remission", "unknown")
    inferred = False
    # a course belongs to the episode it treated: one that started before the boundary is previous
    episode = episode_of(c, episode_start)
    if adequate and result.category == "unknown" and not c.ongoing and episode == "current":
        failed = inferred = inferred_failure(facts, c, all_courses)
    return Trial(
        treatment=c.treatment, kind=kind, treatment_class=facts.treatment_class(c),
        start=c.start, end=c.end, ongoing=c.ongoing, adequate=adequate, findings=tuple(findings),
        adherence=adherence, pdc=c.pdc, outcome=result.category,
        change=round(result.change, 4) if result.change is not None else None,
        instrument=result.instrument, evidence=tuple(dict.fromkeys(evidence)), failed=failed,
        failure_inferred=inferred, episode=episode, daily_dose=c.max_dose, min_adequate_dose=minimum,
        weeks_adequate=round(weeks, 1), sessions=c.sessions, laterality=c.laterality,
        segments=tuple(c.segments), caveats=tuple(caveats),
        baseline=result.baseline.value if result.baseline else None,
        endpoint=result.endpoint.value if result.endpoint else None)


def lithium_ok(facts: Facts, c: Course, evidence: list[str]) -> tuple[bool, float]:
    """Lithium is judged by serum level (≥ min for ≥ 2 weeks), not by dose (clinical-spec §7)."""
    levels = [m for m in facts.scores.get("lithium", []) if c.start <= m.when <= c.end + timedelta(days=7)]
    good = [m for m in levels if m.value >= facts.rules.t("lithium_level_min")]
    evidence.extend(m.ref for m in levels)
    if not good:
        return False, 0.0
    weeks = ((c.end - good[0].when).days + 1) / 7
    ok = weeks >= facts.rules.t("lithium_level_weeks") and levels[-1].value >= facts.rules.t("lithium_level_min")
    return ok, round(((c.end - c.start).days + 1) / 7, 1) if ok else weeks


def intolerance_evidence(facts: Facts, c: Course, drug_class: str) -> list[str] | None:
    """The references showing intolerance (seed, clinical-spec §2.2), or None."""
    if c.stop_reason == "adverse-effect":
        return []
    slack = timedelta(days=30)
    refs = [i.ref for i in facts.record.intolerances if i.ingredient == c.treatment
            and (i.when is None or c.start - timedelta(days=7) <= i.when <= c.end + slack)]
    if refs:
        return refs
    if drug_class in ("SSRI", "SNRI") and not c.ongoing:
        within = int(facts.rules.t("hyponatraemia_stop_within_days"))
        low = [m for m in facts.scores.get("sodium", [])
               if m.value < facts.rules.t("hyponatraemia_below") and c.start <= m.when <= c.end
               and (c.end - m.when).days <= within]
        if low:
            return [low[0].ref]
    return None


def episode_of(c: Course, episode_start: date | None) -> str:
    return "previous" if episode_start is not None and c.start < episode_start else "current"


def inferred_failure(facts: Facts, c: Course, all_courses: list[Course]) -> bool:
    """An adequate trial without paired scores, followed by a switch or an augmentation (policy, §3 v2).

    Only when the next treatment (not an adjunct) started within 30 days of this trial's end and the
    trial lasted < 26 weeks: a longer course is continuation or maintenance, which ends by plan.
    """
    rules = facts.rules
    if (c.end - c.start).days + 1 >= rules.t("inferred_failure_max_weeks") * 7:
        return False
    within = timedelta(days=int(rules.t("inferred_failure_next_within_days")))
    return any(o is not c and not o.adjunct and c.start < o.start <= c.end + within for o in all_courses)


def non_depressive(facts: Facts, c: Course) -> bool:
    """The order or statement names a non-depressive indication and not depression (clinical-spec §1 v2)."""
    return c.kind == "medication" and "mdd" not in c.reasons and bool(c.reasons & facts.rules.non_depressive)


def unjudged(facts: Facts, c: Course, kind: str, disorder: str) -> Trial:
    """An adjunct, or an MDD trial for a non-depressive indication: listed, never judged, never failed."""
    drug = facts.rules.drug(c.treatment)
    findings = () if kind == "adjunct" else ("non-depressive-indication",)
    return Trial(
        treatment=c.treatment, kind=kind, treatment_class=facts.treatment_class(c), start=c.start, end=c.end,
        ongoing=c.ongoing, adequate=False, findings=findings, adherence="not-applicable", pdc=c.pdc,
        outcome="unknown", change=None, instrument=None, evidence=tuple(dict.fromkeys(c.refs)), failed=False,
        failure_inferred=False, episode="current", daily_dose=c.max_dose,
        min_adequate_dose=drug.min_daily_dose if drug else None, weeks_adequate=0.0, sessions=None,
        laterality=None, segments=tuple(c.segments), caveats=("window-assumed",) if c.window_assumed else ())


def in_progress(facts: Facts, c: Course) -> bool:
    """An advanced course whose last session is within 14 days of the as-of date, or whose order is active."""
    last = max(c.dates) if c.dates else c.end
    recent = (facts.as_of - last).days <= facts.rules.t("advanced_in_progress_days")
    return recent or (c.active_order and c.end >= facts.as_of)


def advanced(facts: Facts, c: Course, disorder: str, episode_start: date | None) -> Trial:
    """An esketamine, ketamine or rTMS course: adequate with enough sessions; listed, never staged."""
    sessions = c.sessions if c.kind == "rtms" else len(c.dates)
    minimum = facts.rules.t({"rtms": "rtms_min_sessions", "esketamine": "esketamine_min_sessions"}.get(
        c.treatment, "ketamine_min_sessions"))
    ongoing = in_progress(facts, c)
    adequate = (sessions or 0) >= minimum
    result = outcome(facts, c, disorder)
    evidence = list(c.refs) + [m.ref for m in (result.baseline, result.endpoint) if m is not None]
    return Trial(
        treatment=c.treatment, kind="advanced", treatment_class=facts.treatment_class(c), start=c.start,
        end=c.end, ongoing=ongoing, adequate=adequate, findings=(), adherence="not-applicable", pdc=None,
        outcome=result.category, change=round(result.change, 4) if result.change is not None else None,
        instrument=result.instrument, evidence=tuple(dict.fromkeys(evidence)),
        failed=adequate and result.category not in ("remission", "unknown"), failure_inferred=False,
        episode=episode_of(c, episode_start), daily_dose=c.max_dose if c.kind == "medication" else None,
        min_adequate_dose=None, weeks_adequate=round(((c.end - c.start).days + 1) / 7, 1), sessions=sessions,
        laterality=None, segments=tuple(c.segments),
        baseline=result.baseline.value if result.baseline else None,
        endpoint=result.endpoint.value if result.endpoint else None)
