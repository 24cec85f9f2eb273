"""v2 adjuncts and advanced treatments (clinical-spec §2) and how the next step sees them (§6)."""

from __future__ import annotations

from datetime import date

from fhirtrd.domain.model import MedicationExposure
from fhirtrd.terminology import Terminology

from .domain_facts import AS_OF, condition, fills, phq9, run, rx, sessions, trial

SERTRALINE_FAILURE = [rx("sertraline", "2025-01-01", days=150, dose=100), *fills("sertraline", "2025-01-01", 5),
                      phq9(20, "2024-12-28"), phq9(18, "2025-04-01")]


def test_bedtime_trazodone_50_mg_is_an_adjunct_never_judged(terminology: Terminology) -> None:
    # the issue: "raise trazodone toward 300 mg" for a 50 mg bedtime hypnotic
    a = run(terminology.rules, condition(), *SERTRALINE_FAILURE,
            rx("trazodone", "2025-02-01", days=90, dose=50, bedtime=True))["mdd"]
    t = trial(a, "trazodone")
    assert (t.kind, t.adequate, t.findings, t.failed) == ("adjunct", False, (), False)
    assert "inadequate-dose" not in a.pseudo_resistance
    assert a.next_step.strategy == "switch" and "trazodone" not in a.next_step.reason


def test_low_dose_alongside_another_antidepressant_is_an_adjunct(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), *SERTRALINE_FAILURE,
            rx("amitriptyline", "2025-02-01", days=90, dose=25))["mdd"]
    assert trial(a, "amitriptyline").kind == "adjunct"


def test_prn_low_dose_doxepin_is_an_adjunct(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), rx("doxepin", "2025-01-01", days=90, dose=10, prn=True),
            phq9(15, "2024-12-30"))["mdd"]
    assert trial(a, "doxepin").kind == "adjunct"
    assert a.next_step.strategy == "start-treatment"  # an adjunct is never the latest trial


def test_low_dose_trazodone_alone_in_the_day_is_an_underdosed_trial(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), rx("trazodone", "2025-05-01", days=90, dose=50))["mdd"]
    t = trial(a, "trazodone")
    assert (t.kind, t.findings) == ("medication", ("inadequate-dose",))


def test_mirtazapine_15_mg_at_bedtime_is_a_trial_not_an_adjunct(terminology: Terminology) -> None:
    # the table says mirtazapine < 15 mg/day: 15 mg is the minimum antidepressant dose
    a = run(terminology.rules, condition(), rx("mirtazapine", "2025-01-01", days=90, dose=15, bedtime=True))["mdd"]
    assert trial(a, "mirtazapine").kind == "medication"


def esketamine(when: str) -> MedicationExposure:
    return rx("esketamine", when, days=1, dose=56, source="administration")


def test_esketamine_is_an_advanced_course_in_progress_and_the_next_step_continues(terminology: Terminology) -> None:
    days = ["2025-05-20", "2025-05-23", "2025-05-27", "2025-05-30", "2025-06-03", "2025-06-06", "2025-06-10",
            "2025-06-13", "2025-06-20"]
    venla = [rx("venlafaxine", "2024-09-01", days=100, dose=225), phq9(21, "2024-08-30"), phq9(20, "2024-11-20")]
    a = run(terminology.rules, condition(), *venla, *SERTRALINE_FAILURE, *(esketamine(x) for x in days))["mdd"]
    t = trial(a, "esketamine")
    assert (t.kind, t.treatment_class, t.sessions, t.adequate, t.ongoing) == ("advanced", "esketamine", 9, True, True)
    assert (a.failed_adequate_trials, a.stage) == (2, "II")  # advanced courses are never counted
    assert a.next_step.strategy == "continue" and "esketamine" in a.next_step.reason
    assert a.next_step.also == ()


def test_a_finished_esketamine_course_does_not_hold_the_next_step(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), *SERTRALINE_FAILURE, esketamine("2025-05-01"), esketamine("2025-05-05"))["mdd"]
    t = trial(a, "esketamine")
    assert (t.adequate, t.ongoing) == (False, False) and a.next_step.strategy == "switch"


def test_rtms_sessions_form_an_advanced_course(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), *SERTRALINE_FAILURE, *sessions("rtms", "2025-06-02", 20, every=1))["mdd"]
    t = trial(a, "rtms")
    assert (t.kind, t.treatment_class, t.sessions, t.adequate, t.ongoing) == ("advanced", "rTMS", 20, True, True)
    assert a.next_step.strategy == "continue" and AS_OF == date(2025, 6, 30)
