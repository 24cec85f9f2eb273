"""The resistance classifier: a patient's facts → one Assessment per disorder in scope.

Each clinical question has its own module of pure functions, next to its source:
scope (§1) · trials and kinds (§2 reconstruction) · adequacy (§2.1–§2.2) · outcomes and episodes (§3)
· staging (§4, §5) · pseudo (patient-level findings, §6) · next_step (§6) · biology (§6).
Policy choices where the spec is silent are listed in docs/clinical-rules.md.
"""

from __future__ import annotations

from datetime import date

from fhirtrd.domain import biology, staging
from fhirtrd.domain.adequacy import judge
from fhirtrd.domain.facts import Facts
from fhirtrd.domain.kinds import counts_for, trial_kinds
from fhirtrd.domain.model import Assessment, Finding, Measurement, PatientRecord
from fhirtrd.domain.next_step import next_step
from fhirtrd.domain.outcomes import episode_boundary
from fhirtrd.domain.pseudo import MEDICAL, patient_findings
from fhirtrd.domain.rules import Rules
from fhirtrd.domain.scope import scope
from fhirtrd.domain.trials import medication_courses, procedure_courses


def classify(record: PatientRecord, rules: Rules, as_of: date) -> tuple[Assessment, ...]:
    """Assess every disorder in scope for this patient as of `as_of`; no IO, no clock."""
    scores: dict[str, list[Measurement]] = {}
    for m in sorted(record.measurements, key=lambda m: (m.when, m.ref)):
        scores.setdefault(m.concept, []).append(m)
    courses = medication_courses(record, rules, as_of) + procedure_courses(record.procedures, rules, as_of)
    courses.sort(key=lambda c: (c.start, c.treatment))
    facts = Facts(record, rules, as_of, scores, courses)
    out = []
    for disorder in ("mdd", "sad"):
        diagnosis = scope(facts, disorder)
        if diagnosis:
            out.append(assess(facts, disorder, diagnosis))
    return tuple(out)


def assess(facts: Facts, disorder: str, diagnosis: str) -> Assessment:
    """One disorder's assessment: trials, findings, stage, status, caveats and next step."""
    episode_start = episode_boundary(facts, disorder)
    relevant = [c for c in facts.courses if counts_for(facts, c, disorder)]
    kinds = trial_kinds(facts, relevant, disorder)
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

    if disorder == "mdd":
        stage, resistant = staging.thase_rush(facts, counted)
    else:
        stage, resistant = staging.sad_stage(facts, counted, current, codes)
    if "misdiagnosis-bipolar" in codes:
        status, resistant = "not-applicable", False
    elif codes & set(MEDICAL):
        status = "provisional"
    else:
        status = "confirmed"

    caveats = set()
    if any(t.adherence == "unknown" and t.adequate and t.kind != "augmentation" for t in current):
        caveats.add("adherence-unverified")
    if any(t.failure_inferred for t in counted):
        caveats.add("failure-inferred")
    if any("dose-unknown" in t.caveats for t in current):
        caveats.add("dose-unknown")

    latest = max((t for t in current if t.kind != "augmentation"), key=lambda t: (t.start, t.treatment),
                 default=None)
    step = next_step(facts, disorder, stage, latest, codes, current)
    failures = len(counted)
    inflammation, inflammation_refs = biology.inflammation(facts)
    likelihood = biology.likelihood(facts, failures)
    advisories = ("goals-of-care",) if likelihood.expected_utility < 0 else ()
    diag_refs = tuple(sorted(c.ref for c in facts.conditions(disorder)))
    score_refs = tuple(sorted({ref for t in current for ref in t.evidence if ref.startswith("Observation/")}))
    return Assessment(
        disorder=disorder, diagnosis=diagnosis, stage=stage, status=status, treatment_resistant=resistant,
        failed_adequate_trials=failures, failed_classes=failed_classes,
        pseudo_resistance=tuple(sorted({f.code for f in findings})), findings=tuple(findings),
        caveats=tuple(sorted(caveats)), next_step=step, inflammation=inflammation,
        inflammation_evidence=inflammation_refs,
        subtypes=biology.subtypes(facts) if disorder == "mdd" else (),
        msm=staging.msm(facts, current, counted, episode_start) if disorder == "mdd" else None,
        next_step_likelihood=likelihood, advisories=advisories, trials=tuple(trials),
        diagnosis_evidence=diag_refs, score_evidence=score_refs, episode_start=episode_start)
