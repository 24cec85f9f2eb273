"""v2 scope: inferred MDD needs a moderate score and no non-depressive indication (clinical-spec §1)."""

from __future__ import annotations

from fhirtrd.terminology import Terminology

from .domain_facts import condition, fills, phq9, run, rx, session, sessions, trial

PAIN = frozenset({"neuropathic-pain"})


def test_a_mild_screening_phq9_does_not_infer_mdd(terminology: Terminology) -> None:
    # Kroenke 2001: PHQ-9 5–9 is mild — a screen, not an episode
    assert "mdd" not in run(terminology.rules, rx("sertraline", "2025-01-01"), phq9(7, "2024-12-20"),
                            phq9(6, "2025-03-01"))


def test_a_moderate_phq9_in_the_baseline_window_infers_mdd(terminology: Terminology) -> None:
    a = run(terminology.rules, rx("sertraline", "2025-01-01"), phq9(12, "2024-12-20"), phq9(6, "2025-03-01"))
    assert a["mdd"].diagnosis == "inferred"


def test_a_moderate_score_outside_the_baseline_window_does_not_count(terminology: Terminology) -> None:
    # 60 days before the start is the baseline window's beginning (§3): 1 Oct 2024 is earlier
    assert "mdd" not in run(terminology.rules, rx("sertraline", "2025-01-01"), phq9(14, "2024-10-01"))


def test_duloxetine_for_neuropathic_pain_never_infers_mdd(terminology: Terminology) -> None:
    # the issue: a neuropathy patient given an inferred MDD and a "failed SNRI"
    assert "mdd" not in run(terminology.rules, rx("duloxetine", "2025-01-01", dose=60, reasons=PAIN),
                            phq9(11, "2024-12-20"), phq9(11, "2025-03-01"))


def test_a_non_depressive_indication_is_listed_and_counts_for_nothing(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), rx("duloxetine", "2025-01-01", dose=60, reasons=PAIN),
            *fills("duloxetine", "2025-01-01", 3, dose=60), phq9(18, "2024-12-20"), phq9(17, "2025-03-25"))["mdd"]
    t = trial(a, "duloxetine")
    assert (t.findings, t.failed, t.adequate) == (("non-depressive-indication",), False, False)
    assert (a.failed_adequate_trials, a.stage) == (0, "0")
    assert [f.code for f in a.findings] == ["non-depressive-indication"] and a.pseudo_resistance == ()
    assert a.next_step.strategy == "start-treatment"


def test_an_order_naming_depression_and_pain_is_an_mdd_trial(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), rx("duloxetine", "2025-01-01", dose=60, reasons=PAIN | {"mdd"}))["mdd"]
    assert trial(a, "duloxetine").findings == ()


def test_psychotherapy_is_attributed_to_the_disorder_its_sessions_name(terminology: Terminology) -> None:
    # §2.1 v2: CBT for SAD is not an MDD trial; sessions without a reason count for both
    a = run(terminology.rules, condition("mdd"), condition("sad"), phq9(12, "2025-01-01", concept="lsas"),
            *sessions("cbt", "2025-01-06", 14, reasons=frozenset({"sad"})))
    assert [t.treatment for t in a["sad"].trials] == ["cbt"] and a["mdd"].trials == ()
    b = run(terminology.rules, condition("mdd"), condition("sad"), session("cbt", "2025-01-06"))
    assert [t.treatment for t in b["mdd"].trials] == ["cbt"] == [t.treatment for t in b["sad"].trials]
