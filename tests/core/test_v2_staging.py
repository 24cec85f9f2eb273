"""v2 TR-SAD mechanisms, CPAP, substance remission and the next-step rows (clinical-spec §5, §6)."""

from __future__ import annotations

from fhirtrd.terminology import Terminology

from .domain_facts import condition, fills, phq9, run, rx, session, sessions

SAD = [condition("sad"), phq9(80, "2024-12-28", concept="lsas"), phq9(75, "2025-04-01", concept="lsas")]
SERTRALINE = [rx("sertraline", "2025-01-01", days=90), *fills("sertraline", "2025-01-01", 3)]


def test_ssri_then_venlafaxine_is_one_mechanism_stage_ii_without_the_tr_sad_label(terminology: Terminology) -> None:
    a = run(terminology.rules, *SAD, rx("sertraline", "2024-03-01", days=90), *fills("sertraline", "2024-03-01", 3),
            phq9(82, "2024-02-25", concept="lsas"), phq9(80, "2024-05-25", concept="lsas"),
            rx("venlafaxine", "2025-01-01", days=90, dose=150), *fills("venlafaxine", "2025-01-01", 3, dose=150))["sad"]
    assert (a.stage, a.failed_adequate_trials, a.treatment_resistant) == ("II", 2, False)


def test_ssri_and_cbt_earn_the_tr_sad_label(terminology: Terminology) -> None:
    a = run(terminology.rules, *SAD, *SERTRALINE, *sessions("cbt", "2025-01-06", 12))["sad"]
    assert (a.stage, a.treatment_resistant, a.caveats) == ("II", True, ())


def test_generic_psychotherapy_counts_as_the_cbt_leg_with_modality_unverified(terminology: Terminology) -> None:
    a = run(terminology.rules, *SAD, *SERTRALINE, *sessions("psychotherapy", "2025-01-06", 12))["sad"]
    assert (a.stage, a.treatment_resistant, a.caveats) == ("II", True, ("modality-unverified",))


def test_cpap_clears_the_sleep_apnoea_finding(terminology: Terminology) -> None:
    untreated = run(terminology.rules, condition(), condition("osa"))["mdd"]
    treated = run(terminology.rules, condition(), condition("osa"), session("cpap", "2024-06-01"))["mdd"]
    assert ("medical-osa" in untreated.pseudo_resistance, "medical-osa" in treated.pseudo_resistance) == (True, False)


def test_substance_use_in_remission_is_not_active(terminology: Terminology) -> None:
    active = run(terminology.rules, condition(), condition("substance-use"))["mdd"]
    remitted = run(terminology.rules, condition(), condition("substance-use", "2020-01-01", None, False))["mdd"]
    assert (active.status, remitted.status, remitted.pseudo_resistance) == ("provisional", "confirmed", ())


def test_no_trial_and_a_remitted_latest_score_is_monitor(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), phq9(14, "2025-01-01"), phq9(3, "2025-05-01"))["mdd"]
    assert a.next_step.strategy == "monitor"
    b = run(terminology.rules, condition(), phq9(3, "2025-01-01"), phq9(14, "2025-05-01"))["mdd"]
    assert b.next_step.strategy == "start-treatment"


def test_the_latest_trial_on_a_tie_is_the_higher_dose_relative_to_its_minimum(terminology: Terminology) -> None:
    # same start: sertraline 50 (1× its minimum) and bupropion 150 (0.5×): sertraline is the latest trial
    a = run(terminology.rules, condition(), rx("sertraline", "2025-06-01", dose=50),
            rx("bupropion", "2025-06-01", dose=150))["mdd"]
    assert a.next_step.strategy == "extend-trial" and "sertraline" in a.next_step.reason
