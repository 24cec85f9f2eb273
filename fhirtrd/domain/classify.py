"""The resistance classifier: a patient's facts → one Assessment per disorder in scope.

Each clinical question has its own module of pure functions, next to its source:
trials (§2 windows) · kinds (switch, combination, adjunct, advanced) · scope (§1) · adequacy
(§2.1–§2.2) · outcomes and episodes (§3) · staging (§4, §5) · pseudo (patient-level findings, §6)
· next_step (§6) · biology (§6). Policy choices where the spec is silent are listed in
docs/clinical-rules.md.
"""

from __future__ import annotations

from datetime import date

from fhirtrd.domain import biology, staging
from fhirtrd.domain.adequacy import judge, non_depressive
from fhirtrd.domain.facts import Facts, score_key
from fhirtrd.domain.kinds import counts_for, mark_adjuncts, switchable, trial_kinds
from fhirtrd.domain.model import Assessment, Finding, Measurement, PatientRecord
from fhirtrd.domain.next_step import latest_trial, next_step
from fhirtrd.domain.outcomes import episode_boundary
from fhirtrd.domain.pseudo import MEDICAL, patient_findings
from fhirtrd.domain.rules import Rules
from fhirtrd.domain.scope import scope
from fhirtrd.domain.trials import Course, cut_at_switches, medication_courses, procedure_courses

NOT_PSEUDO_RESISTANCE = ("dose-unknown", "non-depressive-indication")


def classify(record: PatientRecord, rules: Rules, as_of: date) -> tuple[Assessment, ...]:
    """Assess every disorder in scope for this patient as of `as_of`; no IO, no clock."""
    scores: dict[str, list[Measurement]] = {}
    for m in sorted(record.measurements, key=score_key):
        scores.setdefault(m.concept, []).append(m)
    medication = medication_courses(record, rules, as_of)
    mark_adjuncts(medication, rules)
    cut_at_switches(medication, switchable(medication, rules), rules, as_of)
    courses = medication + procedure_courses(record.procedures, rules, as_of)
    courses.sort(key=lambda c: (c.start, c.treatment))
    facts = Facts(record, rules, as_of, scores, courses)
    out = []
    for disorder in ("mdd", "sad"):
        diagnosis = scope(facts, disorder)
        if diagnosis:
            out.append(assess(facts, disorder, diagnosis))
    return tuple(out)


def disorder_courses(facts: Facts, disorder: str) -> list[Course]:
    """The courses that treat the disorder; sessions attributed by their reasons (clinical-spec §2.1 v2)."""
    sessions = [p for p in facts.record.procedures if not p.reasons or disorder in p.reasons]
    courses = [c for c in facts.courses if c.kind == "medication" and counts_for(facts, c, disorder)]
    courses += [c for c in procedure_courses(sessions, facts.rules, facts.as_of) if counts_for(facts, c, disorder)]
    return sorted(courses, key=lambda c: (c.start, c.treatment))


def assess(facts: Facts, disorder: str, diagnosis: str) -> Assessment:
    """One disorder's assessment: trials, findings, stage, status, caveats and next step."""
    relevant = disorder_courses(facts, disorder)
    kinds = trial_kinds(facts, relevant, disorder)
    treatments = [c for c in relevant if kinds[id(c)] in ("medication", "psychotherapy", "ect", "advanced")
                  and not (disorder == "mdd" and non_depressive(facts, c))]
    episode_start = episode_boundary(facts, disorder, treatments)
    trials = [judge(facts, c, kinds[id(c)], disorder, relevant, episode_start) for c in relevant]

    current = [t for t in trials if t.episode == "current"]
    counted = [t for t in current if t.failed and t.kind in ("medication", "psychotherapy", "ect")]
    failed_classes = tuple(sorted({t.treatment_class for t in counted}))
    patient = patient_findings(facts)
    codes = {f.code for f in patient}
    trial_codes = {code for t in current for code in t.findings if code != "dose-unknown"}
    findings = list(patient) + [
        Finding(code, tuple(sorted({ref for t in current if code in t.findings for ref in t.evidence})))
        for code in sorted(trial_codes)]

    caveats = set()
    if disorder == "mdd":
        stage, resistant = staging.thase_rush(facts, counted)
    else:
        stage, resistant, unverified = staging.sad_stage(facts, counted, current, codes)
        if unverified:
            caveats.add("modality-unverified")
    if "misdiagnosis-bipolar" in codes:
        status, resistant = "not-applicable", False
    elif codes & set(MEDICAL):
        status = "provisional"
    else:
        status = "confirmed"

    if any(t.adherence == "unknown" and t.adequate and t.kind != "augmentation" for t in current):
        caveats.add("adherence-unverified")
    if any(t.failure_inferred for t in counted):
        caveats.add("failure-inferred")
    for caveat in ("dose-unknown", "window-assumed"):
        if any(caveat in t.caveats for t in current):
            caveats.add(caveat)

    step = next_step(facts, disorder, stage, latest_trial(current), codes, current)
    failures = len(counted)
    inflammation, inflammation_refs = biology.inflammation(facts)
    likelihood = biology.likelihood(facts, failures)
    advisories = ("goals-of-care",) if likelihood.expected_utility < 0 else ()
    diag_refs = tuple(sorted(c.ref for c in facts.conditions(disorder)))
    score_refs = tuple(sorted({ref for t in current for ref in t.evidence if ref.startswith("Observation/")}))
    return Assessment(
        disorder=disorder, diagnosis=diagnosis, stage=stage, status=status, treatment_resistant=resistant,
        failed_adequate_trials=failures, failed_classes=failed_classes,
        pseudo_resistance=tuple(sorted({f.code for f in findings} - set(NOT_PSEUDO_RESISTANCE))),
        findings=tuple(findings), caveats=tuple(sorted(caveats)), next_step=step, inflammation=inflammation,
        inflammation_evidence=inflammation_refs,
        subtypes=biology.subtypes(facts) if disorder == "mdd" else (),
        msm=staging.msm(facts, current, counted, episode_start) if disorder == "mdd" else None,
        next_step_likelihood=likelihood, advisories=advisories, trials=tuple(trials),
        diagnosis_evidence=diag_refs, score_evidence=score_refs, episode_start=episode_start)
