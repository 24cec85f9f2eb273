"""v2 trial windows: stale orders, dispenses outside windows, refill gaps, PQA, switch vs combination (§2)."""

from __future__ import annotations

from datetime import date

from fhirtrd.terminology import Terminology

from .domain_facts import condition, fill, fills, phq9, run, rx, trial


def test_a_stale_active_order_is_capped_at_180_days_with_window_assumed(terminology: Terminology) -> None:
    # §2 v2: an active order from 2020 with no supply and no end does not run to 2025
    a = run(terminology.rules, condition(onset="2019-12-01"),
            rx("sertraline", "2020-01-01", days=None, active=True))["mdd"]
    t = trial(a, "sertraline")
    assert (t.start, t.end, t.ongoing) == (date(2020, 1, 1), date(2020, 6, 29), False)
    assert "window-assumed" in t.caveats and "window-assumed" in a.caveats


def test_the_cap_counts_from_the_last_dispense_when_it_is_later(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(onset="2019-12-01"),
            rx("sertraline", "2020-01-01", days=None, active=True), fill("sertraline", "2020-03-01"))["mdd"]
    assert trial(a, "sertraline").end == date(2020, 8, 28)  # 1 Mar 2020 + 180 days


def test_a_recent_open_order_runs_to_the_as_of_date_without_the_caveat(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), rx("sertraline", "2025-03-01", days=None, active=True))["mdd"]
    t = trial(a, "sertraline")
    assert (t.end, t.ongoing, t.caveats) == (date(2025, 6, 30), True, ())


def test_a_dispense_after_the_order_window_extends_it(terminology: Terminology) -> None:
    # order 1–30 Jan; a fill on 10 Feb (10 days later) is still exposure: the window runs to its coverage end
    late = fill("sertraline", "2025-02-10")
    a = run(terminology.rules, condition(), rx("sertraline", "2025-01-01", days=30), fill("sertraline", "2025-01-01"),
            late)["mdd"]
    t = trial(a, "sertraline")
    assert (t.start, t.end) == (date(2025, 1, 1), date(2025, 3, 11)) and late.ref in t.evidence


def test_a_dispense_far_from_every_order_window_starts_a_course_of_its_own(terminology: Terminology) -> None:
    far = fill("sertraline", "2025-05-01")
    a = run(terminology.rules, condition(), rx("sertraline", "2025-01-01", days=30), far)["mdd"]
    windows = [(t.start, t.end, far.ref in t.evidence) for t in a.trials]
    assert windows == [(date(2025, 1, 1), date(2025, 1, 30), False), (date(2025, 5, 1), date(2025, 5, 30), True)]


def test_late_refills_within_30_days_stay_one_dispense_only_course_measured_by_pdc(terminology: Terminology) -> None:
    # §2 v2 dispense-only: gaps of 25 and 24 days are permissible; 90 days covered of 1 Jan–19 May (139 days)
    a = run(terminology.rules, condition(), fill("sertraline", "2025-01-01"), fill("sertraline", "2025-02-25"),
            fill("sertraline", "2025-04-20"))["mdd"]
    [t] = a.trials
    assert (t.start, t.end, t.pdc) == (date(2025, 1, 1), date(2025, 5, 19), round(90 / 139, 4))
    assert "nonadherence" in t.findings and t.adherence == "poor"


def test_the_permissible_gap_is_the_previous_days_supply_when_larger(terminology: Terminology) -> None:
    # a 90-day fill, then 44 days without medication (≤ 90): one course
    a = run(terminology.rules, condition(), fill("sertraline", "2025-01-01", days=90),
            fill("sertraline", "2025-05-15", days=30))["mdd"]
    assert [(t.start, t.end) for t in a.trials] == [(date(2025, 1, 1), date(2025, 6, 13))]


def test_a_gap_beyond_the_permissible_one_splits_dispense_only_courses(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(), fill("sertraline", "2025-01-01"), fill("sertraline", "2025-03-15"))["mdd"]
    assert [(t.start, t.end) for t in a.trials] == [(date(2025, 1, 1), date(2025, 1, 30)),
                                                    (date(2025, 3, 15), date(2025, 4, 13))]


def test_early_refills_are_shifted_pqa(terminology: Terminology) -> None:
    # fills on 1 Jan, 25 Jan, 20 Feb (30 days each) inside a 90-day order: shifted, they cover all 90 days
    a = run(terminology.rules, condition(), rx("sertraline", "2025-01-01", days=90), fill("sertraline", "2025-01-01"),
            fill("sertraline", "2025-01-25"), fill("sertraline", "2025-02-20"))["mdd"]
    assert trial(a, "sertraline").pdc == 1.0


def test_a_switch_when_the_fills_stop_ends_the_first_window_at_the_last_fill(terminology: Terminology) -> None:
    # the worst case: sertraline ordered with 5 refills (180 days), filled 3 times, then venlafaxine.
    # v1 read venlafaxine as augmentation and the unused refills as nonadherence (stage 0).
    a = run(terminology.rules, condition(onset="2024-12-01"),
            rx("sertraline", "2025-01-01", days=180), *fills("sertraline", "2025-01-01", 3),
            phq9(20, "2024-12-28"), phq9(19, "2025-03-25"),
            rx("venlafaxine", "2025-03-20", days=90, dose=225), *fills("venlafaxine", "2025-03-20", 3, dose=225),
            phq9(18, "2025-06-20"))["mdd"]
    sert, venla = trial(a, "sertraline"), trial(a, "venlafaxine")
    assert (sert.end, sert.pdc, sert.adherence, sert.findings) == (date(2025, 3, 31), 1.0, "ok", ())
    assert (venla.kind, sert.kind) == ("medication", "medication")
    assert (a.stage, a.failed_adequate_trials, a.treatment_resistant) == ("II", 2, True)


def test_running_together_beyond_28_days_is_a_combination_class_kept(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(),
            rx("sertraline", "2025-01-01", days=180), *fills("sertraline", "2025-01-01", 6),
            rx("venlafaxine", "2025-03-20", days=90, dose=225))["mdd"]
    venla = trial(a, "venlafaxine")
    assert (venla.kind, venla.treatment_class) == ("augmentation", "SNRI")
    assert trial(a, "sertraline").end == date(2025, 6, 29)


def test_a_cross_taper_without_dispenses_is_a_switch(terminology: Terminology) -> None:
    # sertraline's own supply ends 31 Mar; venlafaxine starts 10 Mar: 22 days together ≤ 28 → switch
    a = run(terminology.rules, condition(), rx("sertraline", "2025-01-01", days=90),
            rx("venlafaxine", "2025-03-10", days=90, dose=225))["mdd"]
    assert [t.kind for t in a.trials] == ["medication", "medication"]


def test_two_antidepressants_started_the_same_day_are_one_combination_each_judged(terminology: Terminology) -> None:
    # sertraline 150 (3× its minimum) leads; bupropion 300 (1×) is the combination's augmentation, class kept
    a = run(terminology.rules, condition(), rx("sertraline", "2025-01-01", days=120, dose=150),
            rx("bupropion", "2025-01-01", days=120, dose=300), phq9(19, "2024-12-30"), phq9(18, "2025-04-20"))["mdd"]
    kinds = {t.treatment: (t.kind, t.treatment_class, t.adequate, t.failed) for t in a.trials}
    assert kinds == {"sertraline": ("medication", "SSRI", True, True), "bupropion": ("augmentation", "NDRI", True, True)}
    assert (a.failed_adequate_trials, a.stage) == (1, "I")
