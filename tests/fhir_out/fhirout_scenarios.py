"""Hand-built assessment results (domain objects) covering every stage, finding and strategy."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from fhirtrd.domain.model import (
    Assessment,
    DoseSegment,
    Finding,
    Likelihood,
    Msm,
    NextStep,
    PatientResult,
    Trial,
)
from fhirtrd.schemas import dump_result

AS_OF = date(2024, 6, 1)


def trial(treatment: str, cls: str, start: date, end: date, **kw: Any) -> Trial:
    base = Trial(
        treatment=treatment,
        kind="medication",
        treatment_class=cls,
        start=start,
        end=end,
        ongoing=False,
        adequate=True,
        findings=(),
        adherence="ok",
        pdc=0.92,
        outcome="nonresponse",
        change=0.11,
        instrument="phq9",
        evidence=(f"MedicationRequest/{treatment}-1", f"Observation/phq9-{treatment}-b",
                  f"Observation/phq9-{treatment}-e"),
        failed=True,
        failure_inferred=False,
        episode="current",
        daily_dose=100.0,
        min_adequate_dose=50.0,
        weeks_adequate=12.0,
        sessions=None,
        laterality=None,
        segments=(DoseSegment(start, end, 100.0),),
        caveats=(),
        baseline=18.0,
        endpoint=16.0,
    )
    return replace(base, **kw)


def likelihood(steps: int, p: float) -> Likelihood:
    return Likelihood(p_remission=p, p_burden=0.3, expected_utility=round(p - 0.3 * 0.25, 4),
                      prior_failed_steps=steps, source="STAR*D (Rush 2006)")


def assessment(**kw: Any) -> Assessment:
    base = Assessment(
        disorder="mdd",
        diagnosis="recorded",
        stage="0",
        status="confirmed",
        treatment_resistant=False,
        failed_adequate_trials=0,
        failed_classes=(),
        pseudo_resistance=(),
        findings=(),
        caveats=(),
        next_step=NextStep(strategy="continue"),
        inflammation="unknown",
        inflammation_evidence=(),
        subtypes=(),
        msm=None,
        next_step_likelihood=likelihood(0, 0.368),
        advisories=(),
        trials=(),
        diagnosis_evidence=("Condition/mdd-1",),
        score_evidence=(),
        episode_start=None,
    )
    return replace(base, **kw)


SERTRALINE = trial("sertraline", "SSRI", date(2023, 1, 5), date(2023, 4, 10))
VENLAFAXINE = trial("venlafaxine", "SNRI", date(2023, 4, 20), date(2023, 7, 30), daily_dose=225.0,
                    min_adequate_dose=150.0, weeks_adequate=8.0, outcome="partial-response",
                    change=0.35, baseline=20.0, endpoint=13.0)
CITALOPRAM = trial("citalopram", "SSRI", date(2022, 3, 1), date(2022, 5, 1), adequate=False,
                   failed=False, findings=("inadequate-dose",), daily_dose=10.0,
                   min_adequate_dose=20.0, weeks_adequate=0.0, outcome="unknown", change=None,
                   instrument=None, baseline=None, endpoint=None)


def stage_ii_mdd() -> PatientResult:
    """Two failed classes, a sub-therapeutic earlier trial, raised CRP: the headline scenario."""
    a = assessment(
        stage="II", treatment_resistant=True, failed_adequate_trials=2,
        failed_classes=("SNRI", "SSRI"), caveats=("adherence-unverified",),
        next_step=NextStep(strategy="augment", suggestions=("mirtazapine",),
                           reason="partial response to venlafaxine"),
        inflammation="elevated", inflammation_evidence=("Observation/crp-1",),
        subtypes=("anhedonic",),
        msm=Msm(total=8, band="moderate", reason=None, duration=2, severity=3, failures=1,
                augmentation=0, ect=0),
        next_step_likelihood=likelihood(2, 0.137),
        trials=(CITALOPRAM, SERTRALINE, VENLAFAXINE),
        score_evidence=("Observation/phq9-latest", "QuestionnaireResponse/phq9-qr-1"),
        episode_start=date(2022, 11, 1),
    )
    return PatientResult(patient="Patient/p-stage2", as_of=AS_OF, assessments=(a,))


def stage_v_mdd() -> PatientResult:
    """Every class failed up to bilateral ECT; open medical and substance findings; futility."""
    trials = (
        trial("fluoxetine", "SSRI", date(2019, 1, 1), date(2019, 4, 1), daily_dose=40.0),
        trial("duloxetine", "SNRI", date(2019, 5, 1), date(2019, 8, 1), daily_dose=60.0),
        trial("nortriptyline", "TCA", date(2020, 1, 1), date(2020, 4, 1), daily_dose=100.0,
              outcome="unknown", change=None, instrument=None, baseline=None, endpoint=None,
              failure_inferred=True, caveats=("failure-inferred",)),
        trial("phenelzine", "MAOI", date(2021, 1, 1), date(2021, 4, 1), daily_dose=60.0,
              outcome="response", change=0.55, baseline=22.0, endpoint=9.9, adherence="unknown",
              pdc=None),
        trial("lithium", "augmentation", date(2021, 2, 1), date(2021, 4, 1), kind="augmentation",
              failed=False, daily_dose=900.0, min_adequate_dose=None),
        trial("ect", "ECT", date(2022, 1, 10), date(2022, 2, 20), kind="ect", daily_dose=None,
              min_adequate_dose=None, weeks_adequate=6.0, sessions=12, laterality="bilateral",
              adherence="not-applicable", pdc=None, instrument="hamd17", baseline=28.0,
              endpoint=24.0, change=0.14, evidence=("Procedure/ect-1", "Procedure/ect-12")),
        trial("ect", "ECT", date(2018, 1, 10), date(2018, 2, 1), kind="ect", adequate=False,
              failed=False, findings=(), daily_dose=None, min_adequate_dose=None,
              weeks_adequate=3.0, sessions=4, laterality="unilateral", outcome="remission",
              adherence="not-applicable", pdc=None, episode="previous", change=0.8,
              instrument="madrs", baseline=30.0, endpoint=6.0, evidence=("Procedure/ect-old",)),
    )
    a = assessment(
        stage="V", status="provisional", treatment_resistant=True, failed_adequate_trials=5,
        failed_classes=("ECT", "MAOI", "SNRI", "SSRI", "TCA"),
        pseudo_resistance=("medical-osa", "medical-thyroid", "substance-use"),
        findings=(Finding("medical-thyroid", ("Observation/tsh-1",), "TSH 7.2 mIU/L"),
                  Finding("medical-osa", ("Condition/osa-1",)),
                  Finding("substance-use", ("Condition/aud-1",), "alcohol dependence")),
        caveats=("adherence-unverified", "failure-inferred"),
        next_step=NextStep(strategy="address-pseudo-resistance",
                           also=("consider-advanced-options",)),
        inflammation="not-elevated", inflammation_evidence=("Observation/hscrp-1",),
        subtypes=("anxious", "anhedonic"),
        msm=Msm(total=13, band="severe", reason=None, duration=3, severity=4, failures=3,
                augmentation=1, ect=1),
        next_step_likelihood=Likelihood(0.13, 0.9, -0.095, 5, "STAR*D (Rush 2006)"),
        advisories=("goals-of-care",),
        trials=trials,
        diagnosis_evidence=("Condition/mdd-2", "Condition/mdd-3"),
    )
    return PatientResult(patient="Patient/p-stage5", as_of=AS_OF, assessments=(a,))


def bipolar_mdd() -> PatientResult:
    """Bipolar diagnosis on file: staging shown for information, reassess the diagnosis."""
    a = assessment(
        stage="I", status="not-applicable", treatment_resistant=False, failed_adequate_trials=1,
        failed_classes=("SSRI",), pseudo_resistance=("misdiagnosis-bipolar",),
        findings=(Finding("misdiagnosis-bipolar", ("Condition/bipolar-1",), "bipolar II disorder"),),
        next_step=NextStep(strategy="reassess-diagnosis"),
        inflammation="indeterminate", inflammation_evidence=("Observation/crp-9",),
        msm=Msm(total=None, band=None, reason="no baseline severity score"),
        next_step_likelihood=likelihood(1, 0.306),
        trials=(SERTRALINE,),
    )
    return PatientResult(patient="Patient/p-bipolar", as_of=AS_OF, assessments=(a,))


def mdd_and_sad() -> PatientResult:
    """Both disorders: SAD stage II (SSRI + CBT failed, propranolol not counted, clonazepam not
    tolerated); MDD stage III, switch after a TCA nonresponse."""
    cbt = trial("cbt", "psychotherapy", date(2022, 1, 1), date(2022, 5, 1), kind="psychotherapy",
                daily_dose=None, min_adequate_dose=None, weeks_adequate=17.0, sessions=14,
                adherence="not-applicable", pdc=None, instrument="lsas", baseline=88.0,
                endpoint=80.0, change=0.09, evidence=("Procedure/cbt-1", "Procedure/cbt-14"))
    sad = assessment(
        disorder="sad", stage="II", treatment_resistant=True, failed_adequate_trials=2,
        failed_classes=("SSRI", "psychotherapy"),
        next_step=NextStep(strategy="switch", also=("consider-advanced-options",),
                           reason="nonresponse to paroxetine"),
        trials=(
            trial("paroxetine", "SSRI", date(2021, 1, 1), date(2021, 4, 1), daily_dose=40.0,
                  instrument="lsas", baseline=90.0, endpoint=85.0, change=0.06),
            cbt,
            trial("propranolol", "beta-blocker", date(2021, 6, 1), date(2021, 9, 1),
                  adequate=False, failed=False, findings=("inadequate-agent",), daily_dose=40.0,
                  min_adequate_dose=None, outcome="unknown", change=None, instrument=None,
                  baseline=None, endpoint=None),
            trial("clonazepam", "benzodiazepine", date(2021, 10, 1), date(2021, 10, 20),
                  adequate=False, failed=False, findings=("intolerance",), daily_dose=1.0,
                  min_adequate_dose=1.0, weeks_adequate=2.7, outcome="unknown", change=None,
                  instrument=None, baseline=None, endpoint=None),
            trial("pregabalin", "gabapentinoid", date(2023, 1, 1), date(2023, 6, 1),
                  failed=False, daily_dose=450.0, outcome="remission", change=0.7,
                  instrument="spin", baseline=50.0, endpoint=15.0),
        ),
        score_evidence=("Observation/lsas-1", "Observation/cgis-1"),
        diagnosis_evidence=("Condition/sad-1",),
        next_step_likelihood=likelihood(2, 0.137),
    )
    mdd = assessment(
        stage="III", treatment_resistant=True, failed_adequate_trials=3,
        failed_classes=("NaSSA", "SSRI", "TCA"),
        next_step=NextStep(strategy="switch", also=("consider-advanced-options",)),
        msm=Msm(total=10, band="moderate", reason=None),
        trials=(
            trial("escitalopram", "SSRI", date(2020, 1, 1), date(2020, 4, 1), daily_dose=20.0,
                  instrument="qids-sr16", baseline=17.0, endpoint=15.0),
            trial("mirtazapine", "NaSSA", date(2020, 5, 1), date(2020, 8, 1), daily_dose=30.0,
                  instrument="madrs", baseline=30.0, endpoint=28.0),
            trial("imipramine", "TCA", date(2020, 9, 1), date(2020, 12, 1), daily_dose=200.0,
                  instrument="bdi2", baseline=35.0, endpoint=33.0),
        ),
        next_step_likelihood=likelihood(3, 0.13),
    )
    return PatientResult(patient="Patient/p-both", as_of=AS_OF, assessments=(mdd, sad))


def early_trials() -> PatientResult:
    """Stage 0: an under-dosed ongoing trial (optimize-dose), a short non-adherent one, one of
    unknown dose and a short psychotherapy; the diagnosis is inferred."""
    a = assessment(
        diagnosis="inferred",
        pseudo_resistance=("dose-unknown", "inadequate-duration", "nonadherence"),
        caveats=("dose-unknown",),
        next_step=NextStep(strategy="optimize-dose"),
        inflammation="not-elevated",
        subtypes=("anxious",),
        msm=Msm(total=None, band=None, reason="episode start unknown"),
        trials=(
            trial("bupropion", "NDRI", date(2024, 3, 1), AS_OF, ongoing=True, adequate=False,
                  failed=False, findings=("inadequate-dose",), daily_dose=150.0,
                  min_adequate_dose=300.0, weeks_adequate=0.0, outcome="unknown", change=None,
                  instrument=None, baseline=None, endpoint=None),
            trial("trazodone", "SARI", date(2023, 1, 1), date(2023, 2, 1), adequate=False,
                  failed=False, findings=("inadequate-duration", "nonadherence"),
                  adherence="poor", pdc=0.45, daily_dose=300.0, weeks_adequate=4.0,
                  outcome="unknown", change=None, instrument=None, baseline=None,
                  endpoint=None),
            trial("vortioxetine", "multimodal", date(2022, 1, 1), date(2022, 3, 1),
                  adequate=False, failed=False, findings=("dose-unknown",), daily_dose=None,
                  weeks_adequate=0.0, outcome="unknown", change=None, instrument=None,
                  baseline=None, endpoint=None, caveats=("dose-unknown",)),
            trial("psychotherapy", "psychotherapy", date(2021, 1, 1), date(2021, 2, 1),
                  kind="psychotherapy", adequate=False, failed=False,
                  findings=("inadequate-psychotherapy",), daily_dose=None,
                  min_adequate_dose=None, weeks_adequate=0.0, sessions=4,
                  adherence="not-applicable", pdc=None, outcome="unknown", change=None,
                  instrument=None, baseline=None, endpoint=None,
                  evidence=("Procedure/pt-1", "urn:uuid:6a4e1f0c-0000-4000-8000-000000000001")),
        ),
        diagnosis_evidence=(),
    )
    return PatientResult(patient="Patient/p-early", as_of=AS_OF, assessments=(a,))


def stage_iv_extend() -> PatientResult:
    """Stage IV with the current MAOI at an adequate dose for too short a time (extend-trial),
    then CGI-I rated response on an earlier SNRI."""
    a = assessment(
        stage="IV", treatment_resistant=True, failed_adequate_trials=4,
        failed_classes=("MAOI", "SNRI", "SSRI", "TCA"),
        next_step=NextStep(strategy="extend-trial", also=("consider-advanced-options",)),
        trials=(
            trial("citalopram", "SSRI", date(2019, 1, 1), date(2019, 4, 1), daily_dose=40.0),
            trial("desvenlafaxine", "SNRI", date(2019, 5, 1), date(2019, 8, 1), daily_dose=100.0,
                  instrument="cgi-i", baseline=None, endpoint=4.0, change=None),
            trial("amitriptyline", "TCA", date(2020, 1, 1), date(2020, 4, 1), daily_dose=150.0),
            trial("tranylcypromine", "MAOI", date(2020, 5, 1), date(2020, 8, 1), daily_dose=40.0),
            trial("isocarboxazid", "MAOI", date(2024, 5, 1), AS_OF, ongoing=True, failed=False,
                  adequate=False, daily_dose=40.0, weeks_adequate=3.0, outcome="unknown",
                  change=None, instrument=None, baseline=None, endpoint=None),
        ),
        next_step_likelihood=likelihood(3, 0.13),
    )
    return PatientResult(patient="Patient/p-stage4", as_of=AS_OF, assessments=(a,))


def remission_continue() -> PatientResult:
    """Stage I: one failed SSRI, then remission on duloxetine — continue."""
    a = assessment(
        stage="I", failed_adequate_trials=1, failed_classes=("SSRI",),
        next_step=NextStep(strategy="continue"),
        trials=(
            SERTRALINE,
            trial("duloxetine", "SNRI", date(2023, 5, 1), AS_OF, ongoing=True, failed=False,
                  daily_dose=60.0, min_adequate_dose=60.0, weeks_adequate=52.0,
                  outcome="remission", change=0.83, baseline=18.0, endpoint=3.0),
        ),
        next_step_likelihood=likelihood(1, 0.306),
    )
    return PatientResult(patient="Patient/p-remission", as_of=AS_OF, assessments=(a,))


def nothing_to_judge_yet() -> PatientResult:
    """MDD with an escitalopram course of unknown dose (gather evidence); SAD never treated."""
    mdd = assessment(
        caveats=("dose-unknown",),
        next_step=NextStep(strategy="gather-evidence",
                           reason="the daily dose of escitalopram is not recorded"),
        trials=(trial("escitalopram", "SSRI", date(2023, 9, 1), date(2024, 1, 1), adequate=False,
                      failed=False, findings=("dose-unknown",), daily_dose=None,
                      weeks_adequate=0.0, outcome="unknown", change=None, instrument=None,
                      baseline=None, endpoint=None),),
    )
    sad = assessment(disorder="sad", next_step=NextStep(strategy="start-treatment",
                                                        reason="no treatment trial on record"),
                     diagnosis_evidence=("Condition/sad-7",))
    return PatientResult(patient="Patient/p-untreated", as_of=AS_OF, assessments=(mdd, sad))


def advanced_in_progress() -> PatientResult:
    """v2: a bedtime trazodone adjunct and an esketamine course in progress beside two failed classes."""
    trazodone = trial("trazodone", "SARI", date(2023, 2, 1), date(2023, 7, 30), kind="adjunct", adequate=False,
                      failed=False, adherence="not-applicable", daily_dose=50.0, min_adequate_dose=300.0,
                      weeks_adequate=0.0, outcome="unknown", change=None, instrument=None, baseline=None,
                      endpoint=None, evidence=("MedicationRequest/trazodone-1",))
    esketamine = trial("esketamine", "esketamine", date(2024, 4, 1), date(2024, 5, 27), kind="advanced",
                       ongoing=True, failed=False, adherence="not-applicable", pdc=None, daily_dose=None,
                       min_adequate_dose=None, weeks_adequate=8.1, sessions=12, outcome="unknown", change=None,
                       instrument=None, baseline=None, endpoint=None, segments=(),
                       evidence=("MedicationAdministration/esk-1", "MedicationAdministration/esk-12"))
    a = assessment(
        stage="II", treatment_resistant=True, failed_adequate_trials=2, failed_classes=("SNRI", "SSRI"),
        caveats=("window-assumed",),
        next_step=NextStep(strategy="continue", reason="advanced treatment in progress: esketamine"),
        next_step_likelihood=likelihood(2, 0.137),
        trials=(SERTRALINE, trazodone, VENLAFAXINE, esketamine))
    return PatientResult(patient="Patient/p-esketamine", as_of=AS_OF, assessments=(a,))


def no_assessment() -> PatientResult:
    return PatientResult(patient="Patient/p-none", as_of=AS_OF, assessments=())


ALL = {
    "stage-ii-two-classes-failed": stage_ii_mdd,
    "stage-v-every-class-and-ect": stage_v_mdd,
    "bipolar-on-file": bipolar_mdd,
    "depression-and-social-anxiety": mdd_and_sad,
    "stage-0-early-trials": early_trials,
    "stage-iv-extend-trial": stage_iv_extend,
    "stage-i-remission-continue": remission_continue,
    "nothing-to-judge-yet": nothing_to_judge_yet,
    "no-assessment": no_assessment,
    "advanced-in-progress-with-adjunct": advanced_in_progress,
}


def contract(name: str) -> dict[str, Any]:
    return dump_result(ALL[name]())
