"""Staging: Thase–Rush and the Maudsley Staging Method for MDD, SAD stages and the TR-SAD label.

Sources: Thase & Rush 1997 (stages 0–V; classes per clinical-spec §4); treatment-resistant MDD =
≥ 2 failed adequate antidepressant trials (FDA esketamine label; EU-PEARL 2022); Maudsley Staging
Method (Fekadu 2009); SAD stages and the formal TR-SAD label (seed; clinical-spec §5). v2: for the
TR-SAD label, SSRIs and the SNRI venlafaxine are one mechanism (mappings/sad_mechanisms.csv; SADRT,
Pollack 2014), and generic psychotherapy counts as the CBT leg with the caveat `modality-unverified`.
Advanced, adjunct and augmentation trials are never staged.
"""

from __future__ import annotations

from datetime import date

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.model import Msm, Trial

MDD_STAGES = ("0", "I", "II", "III", "IV", "V")


def thase_rush(facts: Facts, counted: list[Trial]) -> tuple[str, bool]:
    """(stage, treatment_resistant) from the failed adequate trials of the current episode."""
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
    return MDD_STAGES[stage], len(meds) >= facts.rules.t("tr_mdd_min_failures")


def sad_stage(facts: Facts, counted: list[Trial], current: list[Trial], codes: set[str]) -> tuple[str, bool, bool]:
    """(stage 0/I/II, formal TR-SAD label, modality-unverified) (seed; clinical-spec §5 v2)."""
    rules = facts.rules
    n = len(counted)
    stage = "0" if n == 0 else "I" if n == 1 else "II"
    first_line = [t for t in counted if t.kind == "psychotherapy"
                  or (rules.drug(t.treatment) and rules.drugs[t.treatment].sad_line == "first")]
    mechanisms = {rules.sad_mechanisms.get(t.treatment_class, t.treatment_class) for t in first_line}
    distinct = len(mechanisms) >= rules.t("tr_sad_min_distinct")
    verified = all(t.adherence == "ok" for t in first_line if t.kind == "medication")
    impaired = any(facts.scores.get(inst) and facts.scores[inst][-1].value >= minimum
                   for inst, minimum in rules.impairment)
    judged = [t for t in current if t.kind not in ("adjunct", "advanced")]
    latest = max(judged, key=lambda t: t.start, default=None)
    open_findings = bool(codes) or bool(latest and latest.findings)
    resistant = distinct and verified and impaired and not open_findings
    generic = any(t.kind == "psychotherapy" and t.treatment == "psychotherapy" for t in first_line)
    return stage, resistant, generic and distinct


def msm(facts: Facts, current: list[Trial], counted: list[Trial], episode_start: date | None) -> Msm:
    """Maudsley Staging Method (Fekadu 2009): duration, severity, failures, augmentation, ECT."""
    rules = facts.rules
    meds = [t for t in counted if t.kind == "medication"]
    failures = len(meds)
    fail_pts = None
    if failures:
        fail_pts = 1 if failures <= 2 else 2 if failures <= 4 else 3 if failures <= 6 else 4 if failures <= 10 else 5
    start = episode_first_date(facts, current, episode_start)
    duration = None
    if start is not None:
        months = (facts.as_of - start).days / 30.4375
        duration = 1 if months <= rules.t("msm_duration_moderate_months") else (
            2 if months <= rules.t("msm_duration_severe_months") else 3)
    severity = baseline_severity(facts, episode_start)
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


def episode_first_date(facts: Facts, current: list[Trial], episode_start: date | None) -> date | None:
    dates = [t.start for t in current if t.kind != "adjunct" and "non-depressive-indication" not in t.findings]
    dates += [c.onset for c in facts.conditions("mdd", active_only=True) if c.onset]
    if episode_start:
        dates = [d for d in dates if d >= episode_start] or [episode_start]
    return min(dates) if dates else None


def baseline_severity(facts: Facts, episode_start: date | None) -> int | None:
    """MSM severity: psychotic features 5, else the first scores' band, else the coded severity."""
    if any("psychotic-features" in c.concepts for c in facts.conditions("mdd", active_only=True)):
        return int(facts.rules.t("msm_psychotic_severity"))
    for inst in facts.instruments("mdd"):
        series = [m for m in facts.scores.get(inst.key, []) if episode_start is None or m.when >= episode_start]
        if series:
            band = inst.band(max(series[:3], key=lambda m: m.value).value)
            if band and band.msm_points:
                return band.msm_points
    for level in ("severe", "moderate", "mild"):
        if any(f"severity-{level}" in c.concepts for c in facts.conditions("mdd", active_only=True)):
            return int(facts.rules.t(f"msm_coded_severity_{level}"))
    return None
