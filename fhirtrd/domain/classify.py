"""The resistance classifier: a patient's facts → one Assessment per disorder in scope.

The rules and their sources (clinical-spec §1–§6; every number comes from `Rules`):
- Scope (§1): MDD when an active MDD Condition exists, or — no diagnosis recorded — antidepressant
  trials with depression scores (`diagnosis: inferred`); SAD when an active SAD Condition exists.
- Adequacy (§2.1, seed, ATHF, MGH-ATRQ): dose ≥ the minimum, ≥ `adequate_weeks` at that dose,
  adherence ≥ `adherence_min_pdc` when dispenses exist (else `adherence-unverified`); psychotherapy
  ≥ 12 sessions; ECT ≥ 6 sessions. Falling short is a pseudo-resistance finding, not a failure.
- Intolerance (§2.2): stopped before adequate for an adverse effect (statusReason, intolerance
  record, or hyponatraemia within 14 days of stopping an SSRI/SNRI).
- Outcome (§3): baseline/endpoint windows, the highest-priority instrument with a pair, CGI-I as a
  fallback; failure = an adequate trial that did not remit; an adequate trial with no scores that was
  followed by another treatment is an inferred failure. ≥ 8 weeks of remission scores end an episode.
- Staging (§4, §5): Thase–Rush and Maudsley for MDD; SAD stages and the formal TR-SAD label.
- Pseudo-resistance, next step, inflammation, subtypes, STAR*D likelihood (§6).
Policy choices where the spec is silent are marked "policy" and listed in docs/clinical-rules.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fhirtrd.domain.model import (
    Assessment,
    ConditionFact,
    Finding,
    Likelihood,
    Measurement,
    Msm,
    NextStep,
    PatientRecord,
    Trial,
)
from fhirtrd.domain.rules import Instrument, Rules
from fhirtrd.domain.trials import Course, medication_courses, procedure_courses

MDD_STAGES = ("0", "I", "II", "III", "IV", "V")
MEDICAL = ("medical-thyroid", "medical-osa", "substance-use")


@dataclass(frozen=True, slots=True)
class Outcome:
    category: str
    change: float | None
    instrument: str | None
    baseline: Measurement | None
    endpoint: Measurement | None


def classify(record: PatientRecord, rules: Rules, as_of: date) -> tuple[Assessment, ...]:
    """Assess every disorder in scope for this patient as of `as_of`; no IO, no clock."""
    scores: dict[str, list[Measurement]] = {}
    for m in sorted(record.measurements, key=lambda m: (m.when, m.ref)):
        scores.setdefault(m.concept, []).append(m)
    courses = medication_courses(record, rules, as_of) + procedure_courses(record.procedures, rules, as_of)
    courses.sort(key=lambda c: (c.start, c.treatment))
    ctx = _Context(record, rules, as_of, scores, courses)
    out = []
    for disorder in ("mdd", "sad"):
        diagnosis = ctx.scope(disorder)
        if diagnosis:
            out.append(ctx.assess(disorder, diagnosis))
    return tuple(out)


class _Context:
    def __init__(self, record: PatientRecord, rules: Rules, as_of: date,
                 scores: dict[str, list[Measurement]], courses: list[Course]) -> None:
        self.r, self.rules, self.as_of, self.scores, self.courses = record, rules, as_of, scores, courses
        self.lookback = as_of - timedelta(days=int(rules.t("lab_lookback_days")))

    # -- scope -----------------------------------------------------------------------------------

    def conditions(self, concept: str, *, active_only: bool = False) -> list[ConditionFact]:
        return [c for c in self.r.conditions if concept in c.concepts and (c.active or not active_only)]

    def instruments(self, disorder: str) -> list[Instrument]:
        return sorted((i for i in self.rules.instruments.values()
                       if i.disorder == disorder and i.remission_max is not None), key=lambda i: i.priority)

    def scope(self, disorder: str) -> str | None:
        if self.conditions(disorder, active_only=True):
            return "recorded"
        has_scores = any(self.scores.get(i.key) for i in self.instruments(disorder))
        if disorder == "sad":
            return "recorded" if self.conditions("sad") and has_scores else None
        treated = any(c.kind == "medication" and self._role(c) == "antidepressant" for c in self.courses)
        if treated and has_scores:
            return "recorded" if self.conditions("mdd") else "inferred"
        return None

    def _role(self, c: Course) -> str:
        drug = self.rules.drug(c.treatment)
        return drug.role if drug else c.kind

    def _class(self, c: Course) -> str:
        if c.kind == "ect":
            return "ECT"
        if c.kind == "psychotherapy":
            return "psychotherapy"
        drug = self.rules.drugs[c.treatment]
        return drug.drug_class

    # -- assessment ------------------------------------------------------------------------------

    def assess(self, disorder: str, diagnosis: str) -> Assessment:
        episode_start = self.episode_boundary(disorder)
        relevant = [c for c in self.courses if self._counts_for(c, disorder)]
        kinds = self._kinds(relevant, disorder)
        trials = [self.judge(c, kinds[id(c)], disorder, relevant, episode_start) for c in relevant]

        current = [t for t in trials if t.episode == "current"]
        counted = [t for t in current if t.failed and t.kind in ("medication", "psychotherapy", "ect")]
        failed_classes = tuple(sorted({t.treatment_class for t in counted}))
        patient_findings = self.patient_findings()
        codes = {f.code for f in patient_findings}
        trial_codes = {code for t in current for code in t.findings if code != "dose-unknown"}
        findings = list(patient_findings) + [
            Finding(code, tuple(sorted({ref for t in current if code in t.findings for ref in t.evidence})))
            for code in sorted(trial_codes)]

        if disorder == "mdd":
            stage, resistant = self.thase_rush(counted)
        else:
            stage, resistant = self.sad_stage(counted, current, codes)
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
        next_step = self.next_step(disorder, stage, latest, codes, current)
        failures = len(counted)
        inflammation, inflammation_refs = self.inflammation()
        likelihood = self.likelihood(failures)
        advisories = ("goals-of-care",) if likelihood.expected_utility < 0 else ()
        diag_refs = tuple(sorted(c.ref for c in self.conditions(disorder)))
        score_refs = tuple(sorted({ref for t in current for ref in t.evidence
                                   if ref.startswith("Observation/")}))
        return Assessment(
            disorder=disorder, diagnosis=diagnosis, stage=stage, status=status, treatment_resistant=resistant,
            failed_adequate_trials=failures, failed_classes=failed_classes,
            pseudo_resistance=tuple(sorted({f.code for f in findings})), findings=tuple(findings),
            caveats=tuple(sorted(caveats)), next_step=next_step, inflammation=inflammation,
            inflammation_evidence=inflammation_refs,
            subtypes=self.subtypes() if disorder == "mdd" else (),
            msm=self.msm(current, counted, episode_start) if disorder == "mdd" else None,
            next_step_likelihood=likelihood, advisories=advisories, trials=tuple(trials),
            diagnosis_evidence=diag_refs, score_evidence=score_refs, episode_start=episode_start)

    def _counts_for(self, c: Course, disorder: str) -> bool:
        if c.kind == "psychotherapy":
            return True
        if c.kind == "ect":
            return disorder == "mdd"
        drug = self.rules.drugs[c.treatment]
        if disorder == "mdd":
            return drug.role in ("antidepressant", "augmentation")
        return bool(drug.sad_line)

    def _kinds(self, courses: list[Course], disorder: str) -> dict[int, str]:
        """medication / psychotherapy / ect / augmentation (clinical-spec §2: ≥ 14 days overlap)."""
        overlap = int(self.rules.t("augmentation_min_overlap_days"))
        kinds: dict[int, str] = {}
        for c in courses:
            if c.kind != "medication":
                kinds[id(c)] = c.kind
            elif self._role(c) == "augmentation" or disorder == "mdd" and any(
                    o is not c and o.kind == "medication" and self._role(o) == "antidepressant"
                    and o.start < c.start and (min(o.end, c.end) - c.start).days + 1 >= overlap
                    and kinds.get(id(o)) == "medication"
                    for o in courses):
                kinds[id(c)] = "augmentation"
            else:
                kinds[id(c)] = "medication"
        return kinds

    # -- one trial -------------------------------------------------------------------------------

    def judge(self, c: Course, kind: str, disorder: str, all_courses: list[Course],
              episode_start: date | None) -> Trial:
        rules = self.rules
        findings: list[str] = []
        caveats: list[str] = []
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
                dose_ok, weeks = self._lithium_ok(c, evidence)
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
            intolerance = None if adequate else self._intolerance(c, drug.drug_class)
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

        outcome = self.outcome(c, disorder)
        for m in (outcome.baseline, outcome.endpoint):
            if m is not None:
                evidence.append(m.ref)
        failed = adequate and outcome.category not in ("remission", "unknown")
        inferred = False
        if adequate and outcome.category == "unknown" and not c.ongoing:
            followed = any(o is not c and o.start > c.start for o in all_courses)
            failed = inferred = followed
        # a course belongs to the episode it treated: one that started before the boundary is previous
        episode = "previous" if episode_start is not None and c.start < episode_start else "current"
        return Trial(
            treatment=c.treatment, kind=kind, treatment_class=self._class(c),
            start=c.start, end=c.end, ongoing=c.ongoing, adequate=adequate, findings=tuple(findings),
            adherence=adherence, pdc=c.pdc, outcome=outcome.category,
            change=round(outcome.change, 4) if outcome.change is not None else None,
            instrument=outcome.instrument, evidence=tuple(dict.fromkeys(evidence)), failed=failed,
            failure_inferred=inferred, episode=episode, daily_dose=c.max_dose, min_adequate_dose=minimum,
            weeks_adequate=round(weeks, 1), sessions=c.sessions, laterality=c.laterality,
            segments=tuple(c.segments), caveats=tuple(caveats),
            baseline=outcome.baseline.value if outcome.baseline else None,
            endpoint=outcome.endpoint.value if outcome.endpoint else None)

    def _lithium_ok(self, c: Course, evidence: list[str]) -> tuple[bool, float]:
        """Lithium is judged by serum level (≥ min for ≥ 2 weeks), not by dose (clinical-spec §7)."""
        levels = [m for m in self.scores.get("lithium", []) if c.start <= m.when <= c.end + timedelta(days=7)]
        good = [m for m in levels if m.value >= self.rules.t("lithium_level_min")]
        evidence.extend(m.ref for m in levels)
        if not good:
            return False, 0.0
        weeks = ((c.end - good[0].when).days + 1) / 7
        ok = weeks >= self.rules.t("lithium_level_weeks") and levels[-1].value >= self.rules.t("lithium_level_min")
        return ok, round(((c.end - c.start).days + 1) / 7, 1) if ok else weeks

    def _intolerance(self, c: Course, drug_class: str) -> list[str] | None:
        if c.stop_reason == "adverse-effect":
            return []
        slack = timedelta(days=30)
        refs = [i.ref for i in self.r.intolerances if i.ingredient == c.treatment
                and (i.when is None or c.start - timedelta(days=7) <= i.when <= c.end + slack)]
        if refs:
            return refs
        if drug_class in ("SSRI", "SNRI") and not c.ongoing:
            within = int(self.rules.t("hyponatraemia_stop_within_days"))
            low = [m for m in self.scores.get("sodium", [])
                   if m.value < self.rules.t("hyponatraemia_below") and c.start <= m.when <= c.end
                   and (c.end - m.when).days <= within]
            if low:
                return [low[0].ref]
        return None

    def outcome(self, c: Course, disorder: str) -> Outcome:
        rules = self.rules
        b_from = c.start - timedelta(days=int(rules.t("baseline_before_days")))
        b_to = c.start + timedelta(days=int(rules.t("baseline_after_days")))
        e_from = c.start + timedelta(days=int(rules.t("endpoint_after_start_days")))
        e_to = min(self.as_of, c.end + timedelta(days=int(rules.t("endpoint_after_end_days"))))
        for inst in self.instruments(disorder):
            series = self.scores.get(inst.key, [])
            base = [m for m in series if b_from <= m.when <= b_to]
            end = [m for m in series if e_from <= m.when <= e_to]
            if base and end and end[-1].when > base[-1].when:
                b, e = base[-1], end[-1]
                change = (b.value - e.value) / b.value if b.value > 0 else None
                return Outcome(self._category(inst, e.value, change), change, inst.key, b, e)
        cgi = [m for m in self.scores.get("cgi-i", []) if e_from <= m.when <= e_to]
        if cgi:
            v = cgi[-1].value
            category = "response" if v <= 2 else "partial-response" if v == 3 else "nonresponse"
            return Outcome(category, None, "cgi-i", None, cgi[-1])
        return Outcome("unknown", None, None, None, None)

    def _category(self, inst: Instrument, endpoint: float, change: float | None) -> str:
        if inst.remission_max is not None and endpoint <= inst.remission_max:
            return "remission"
        if change is None:
            return "nonresponse"
        if inst.response_min_change is not None and change >= inst.response_min_change:
            return "response"
        if change >= self.rules.t("partial_response_min_change"):
            return "partial-response"
        return "nonresponse"

    # -- episodes --------------------------------------------------------------------------------

    def episode_boundary(self, disorder: str) -> date | None:
        """Start of the current episode: a relapse after ≥ 8 weeks of remission scores (None: one episode).

        A remission that lasts to the latest score is not a new episode: the patient is still in the
        episode that remitted, so its trials stay current (the next step is then `continue`).
        """
        cut = {i.key: i.remission_max for i in self.instruments(disorder)}
        series = sorted((m for k in cut for m in self.scores.get(k, [])), key=lambda m: m.when)
        need = int(self.rules.t("remission_episode_end_days"))
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

    # -- staging ---------------------------------------------------------------------------------

    def thase_rush(self, counted: list[Trial]) -> tuple[str, bool]:
        meds = [t for t in counted if t.kind == "medication"]
        classes = {t.treatment_class for t in meds}
        stage = 0
        if meds:
            stage = 1
        if len(classes) >= 2:
            stage = 2
        if stage == 2 and len(classes) >= 3 and "TCA" in classes:
            stage = 3
        if stage == 3 and "MAOI" in classes:
            stage = 4
        if stage == 4 and any(t.kind == "ect" and t.laterality == "bilateral" for t in counted):
            stage = 5
        return MDD_STAGES[stage], len(meds) >= self.rules.t("tr_mdd_min_failures")

    def sad_stage(self, counted: list[Trial], current: list[Trial], codes: set[str]) -> tuple[str, bool]:
        n = len(counted)
        stage = "0" if n == 0 else "I" if n == 1 else "II"
        first_line = [t for t in counted if t.kind == "psychotherapy"
                      or (self.rules.drug(t.treatment) and self.rules.drugs[t.treatment].sad_line == "first")]
        distinct = len({t.treatment_class for t in first_line}) >= self.rules.t("tr_sad_min_distinct")
        verified = all(t.adherence == "ok" for t in first_line if t.kind == "medication")
        impaired = any(self.scores.get(inst) and self.scores[inst][-1].value >= minimum
                       for inst, minimum in self.rules.impairment)
        latest = max(current, key=lambda t: t.start, default=None)
        open_findings = bool(codes) or bool(latest and latest.findings)
        return stage, distinct and verified and impaired and not open_findings

    # -- patient-level findings ------------------------------------------------------------------

    def patient_findings(self) -> list[Finding]:
        out: list[Finding] = []
        bipolar = self.conditions("bipolar")
        if bipolar:
            out.append(Finding("misdiagnosis-bipolar", tuple(sorted(c.ref for c in bipolar)),
                               "bipolar, manic/hypomanic or cyclothymic diagnosis on record"))
        thyroid_refs: list[str] = []
        hypo = self.conditions("hypothyroidism", active_only=True)
        treated = any(c.kind == "medication" and self._role(c) == "thyroid" and c.end >= self.lookback
                      for c in self.courses)
        if hypo and not treated:
            thyroid_refs += [c.ref for c in hypo]
        tsh = [m for m in self.scores.get("tsh", []) if m.when >= self.lookback]
        if tsh and tsh[-1].value > self.rules.t("tsh_max"):
            thyroid_refs.append(tsh[-1].ref)
        if thyroid_refs:
            out.append(Finding("medical-thyroid", tuple(sorted(thyroid_refs)),
                               "untreated hypothyroidism or TSH above the reference limit"))
        osa = [c.ref for c in self.conditions("osa", active_only=True)]
        osa += [m.ref for m in self.scores.get("ahi", []) if m.value >= self.rules.t("ahi_min")]
        if osa and not any(p.concept == "cpap" for p in self.r.procedures):
            out.append(Finding("medical-osa", tuple(sorted(osa)), "obstructive sleep apnoea with no CPAP recorded"))
        substance = [c.ref for c in self.conditions("substance-use", active_only=True) if "in-remission" not in c.concepts]
        if substance:
            out.append(Finding("substance-use", tuple(sorted(substance)), "active alcohol or substance use disorder"))
        return out

    # -- next step -------------------------------------------------------------------------------

    def next_step(self, disorder: str, stage: str, latest: Trial | None, codes: set[str],
                  current: list[Trial]) -> NextStep:
        also: tuple[str, ...] = ()
        if (disorder == "mdd" and stage in ("III", "IV", "V")) or (disorder == "sad" and stage == "II"):
            also = ("consider-advanced-options",)
        suggestions: tuple[str, ...] = ()
        if "misdiagnosis-bipolar" in codes:
            return NextStep("reassess-diagnosis", also, (), "a bipolar-spectrum diagnosis is on record")
        if codes & set(MEDICAL) or (latest and "nonadherence" in latest.findings):
            why = ", ".join(sorted(codes & set(MEDICAL)) + (["nonadherence"] if latest and "nonadherence" in latest.findings else []))
            return NextStep("address-pseudo-resistance", also, (), f"resolve first: {why}")
        if latest is None:
            return NextStep("start-treatment", also, (), "no treatment trial on record")
        if latest.ongoing and "inadequate-dose" in latest.findings:
            return NextStep("optimize-dose", also, (), f"{latest.treatment} below the minimum adequate dose")
        if latest.ongoing and not latest.adequate and latest.daily_dose is not None and "inadequate-dose" not in latest.findings \
                and latest.weeks_adequate < self.rules.t("adequate_weeks"):
            return NextStep("extend-trial", also, (), f"{latest.treatment} at an adequate dose for "
                                                       f"{latest.weeks_adequate:g} of {self.rules.t('adequate_weeks'):g} weeks")
        if "intolerance" in latest.findings or latest.outcome == "nonresponse":
            same_class = [t for t in current if t.failed and t is not latest and t.treatment_class == latest.treatment_class]
            why = "intolerance" if "intolerance" in latest.findings else "nonresponse"
            if same_class:
                why += f"; switch to a class other than {latest.treatment_class} after a same-class failure"
            return NextStep("switch", also, (), why)
        if latest.outcome in ("partial-response", "response"):
            if disorder == "mdd":
                suggestions = self.symptom_targets(latest)
            return NextStep("augment", also, suggestions, f"{latest.outcome} without remission on {latest.treatment}")
        if latest.outcome == "remission":
            return NextStep("continue", also, (), f"remission on {latest.treatment}")
        if not latest.adequate and ({"inadequate-dose", "inadequate-duration", "inadequate-psychotherapy", "inadequate-agent"}
                                    & set(latest.findings)):
            return NextStep("address-pseudo-resistance", also, (),
                            f"the last trial ({latest.treatment}) was not adequate: " + ", ".join(latest.findings))
        if "dose-unknown" in latest.caveats:
            return NextStep("gather-evidence", also, (), f"the daily dose of {latest.treatment} is not recorded; "
                                                          "adequacy cannot be judged")
        return NextStep("gather-evidence", also, (), f"no paired scores for {latest.treatment}: "
                                                      "measure the response on a rating scale")

    def symptom_targets(self, latest: Trial) -> tuple[str, ...]:
        positive = self.rules.t("phq9_item_positive_min")
        symptoms = set()
        for symptom, item in (("insomnia", "phq9-item3"), ("fatigue", "phq9-item4")):
            items = self.scores.get(item, [])
            if self.conditions(symptom, active_only=True) or (items and items[-1].value >= positive):
                symptoms.add(symptom)
        if self.conditions("sexual-dysfunction", active_only=True):
            symptoms.add("sexual-dysfunction")
        out: list[str] = []
        for symptom in sorted(symptoms):
            for ingredient in self.rules.symptom_targets.get(symptom, ()):
                if ingredient != latest.treatment and ingredient not in out:
                    out.append(ingredient)
        return tuple(out)

    # -- biology and hints -----------------------------------------------------------------------

    def inflammation(self) -> tuple[str, tuple[str, ...]]:
        for concept in ("hscrp", "crp"):
            recent = [m for m in self.scores.get(concept, []) if m.when >= self.lookback]
            if recent:
                v = recent[-1]
                if v.value > self.rules.t("crp_indeterminate_above"):
                    return "indeterminate", (v.ref,)
                return ("elevated" if v.value > self.rules.t("crp_elevated_above") else "not-elevated"), (v.ref,)
        return "unknown", ()

    def subtypes(self) -> tuple[str, ...]:
        out = []
        gad = self.scores.get("gad7", [])
        if self.conditions("anxiety", active_only=True) or self.conditions("sad", active_only=True) or (
                gad and gad[-1].value >= self.rules.t("gad7_anxious_min")):
            out.append("anxious")
        item1 = self.scores.get("phq9-item1", [])
        if item1 and item1[-1].value >= self.rules.t("phq9_item_positive_min"):
            out.append("anhedonic")
        return tuple(out)

    def likelihood(self, failures: int) -> Likelihood:
        table = self.rules.stard_p_remission
        steps = min(failures, len(table) - 1)
        p = table[steps]
        p_burden = self.rules.t("p_burden")
        eu = p * self.rules.t("utility_remission") - p_burden * self.rules.t("utility_burden")
        return Likelihood(p_remission=p, p_burden=p_burden, expected_utility=round(eu, 4),
                          prior_failed_steps=failures, source="STAR*D (Rush 2006) by prior failed steps")

    def msm(self, current: list[Trial], counted: list[Trial], episode_start: date | None) -> Msm:
        rules = self.rules
        meds = [t for t in counted if t.kind == "medication"]
        failures = len(meds)
        fail_pts = None
        if failures:
            fail_pts = 1 if failures <= 2 else 2 if failures <= 4 else 3 if failures <= 6 else 4 if failures <= 10 else 5
        start = self.episode_first_date(current, episode_start)
        duration = None
        if start is not None:
            months = (self.as_of - start).days / 30.4375
            duration = 1 if months <= rules.t("msm_duration_moderate_months") else (
                2 if months <= rules.t("msm_duration_severe_months") else 3)
        severity = self.baseline_severity(episode_start)
        augmentation = int(any(t.kind == "augmentation" for t in current))
        ect = int(any(t.kind == "ect" for t in current))
        missing = [name for name, v in (("failed antidepressant trials", fail_pts), ("episode duration", duration),
                                        ("baseline severity", severity)) if v is None]
        if missing:
            return Msm(None, None, "missing: " + ", ".join(missing), duration, severity, fail_pts, augmentation, ect)
        total = int(fail_pts + duration + severity + augmentation + ect)  # type: ignore[operator]
        band = "mild" if total <= rules.t("msm_band_mild_max") else (
            "moderate" if total <= rules.t("msm_band_moderate_max") else "severe")
        return Msm(total, band, None, duration, severity, fail_pts, augmentation, ect)

    def episode_first_date(self, current: list[Trial], episode_start: date | None) -> date | None:
        dates = [t.start for t in current]
        dates += [c.onset for c in self.conditions("mdd", active_only=True) if c.onset]
        if episode_start:
            dates = [d for d in dates if d >= episode_start] or [episode_start]
        return min(dates) if dates else None

    def baseline_severity(self, episode_start: date | None) -> int | None:
        if any("psychotic-features" in c.concepts for c in self.conditions("mdd", active_only=True)):
            return int(self.rules.t("msm_psychotic_severity"))
        for inst in self.instruments("mdd"):
            series = [m for m in self.scores.get(inst.key, []) if episode_start is None or m.when >= episode_start]
            if series:
                band = inst.band(max(series[:3], key=lambda m: m.value).value)
                if band and band.msm_points:
                    return band.msm_points
        for level in ("severe", "moderate", "mild"):
            if any(f"severity-{level}" in c.concepts for c in self.conditions("mdd", active_only=True)):
                return int(self.rules.t(f"msm_coded_severity_{level}"))
        return None
