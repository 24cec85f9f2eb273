"""v2 outcomes: score order by timestamp, inferred failure bounds, episodes (clinical-spec §3)."""

from __future__ import annotations

from datetime import date

from fhirtrd.terminology import Terminology

from .domain_facts import at, condition, fills, phq9, run, rx, trial

SERTRALINE = [rx("sertraline", "2025-01-01", days=90), *fills("sertraline", "2025-01-01", 3), phq9(20, "2024-12-28")]


def test_the_later_instant_on_the_endpoint_day_is_the_endpoint(terminology: Terminology) -> None:
    # two final PHQ-9s on 25 Mar: 16 at 09:00 and 3 at 15:00 — the afternoon one is the endpoint
    a = run(terminology.rules, condition(), *SERTRALINE, phq9(3, "2025-03-25", instant=at("2025-03-25", 15)),
            phq9(16, "2025-03-25", instant=at("2025-03-25", 9)))["mdd"]
    assert (trial(a, "sertraline").endpoint, trial(a, "sertraline").outcome) == (3.0, "remission")


def test_at_the_same_instant_the_later_issued_wins(terminology: Terminology) -> None:
    when = at("2025-03-25", 9)
    a = run(terminology.rules, condition(), *SERTRALINE,
            phq9(3, "2025-03-25", instant=when, issued=at("2025-03-25", 10)),
            phq9(17, "2025-03-25", instant=when, issued=at("2025-03-26", 8)))["mdd"]
    assert trial(a, "sertraline").endpoint == 17.0


def test_an_inferred_failure_needs_the_next_treatment_within_30_days(terminology: Terminology) -> None:
    unscored = [rx("sertraline", "2025-01-01", days=90)]
    soon = run(terminology.rules, condition(), *unscored, rx("venlafaxine", "2025-04-20", dose=225))["mdd"]
    later = run(terminology.rules, condition(), *unscored, rx("venlafaxine", "2025-05-15", dose=225))["mdd"]
    assert (trial(soon, "sertraline").failure_inferred, trial(later, "sertraline").failed) == (True, False)


def test_a_course_of_26_weeks_or_more_is_not_an_inferred_failure(terminology: Terminology) -> None:
    # the issue: a completed 12-month course counted as a failure gave a false TRD label
    a = run(terminology.rules, condition(onset="2023-12-01"), rx("sertraline", "2024-01-01", days=365),
            rx("venlafaxine", "2024-12-31", dose=225))["mdd"]
    assert (trial(a, "sertraline").failed, a.failed_adequate_trials) == (False, 0)


def test_twelve_months_without_treatment_start_a_new_episode(terminology: Terminology) -> None:
    # a 2015 course that failed, then nothing until 2025: the 2015 trial is of a previous episode
    a = run(terminology.rules, condition(onset="2015-01-01"),
            rx("citalopram", "2015-01-01", dose=40), phq9(20, "2014-12-20"), phq9(19, "2015-03-20"),
            rx("sertraline", "2025-01-01", days=150), phq9(20, "2024-12-28"), phq9(18, "2025-04-01"))["mdd"]
    assert {t.treatment: t.episode for t in a.trials} == {"citalopram": "previous", "sertraline": "current"}
    assert (a.episode_start, a.failed_adequate_trials, a.stage) == (date(2025, 1, 1), 1, "I")


def test_a_new_condition_after_an_abatement_starts_a_new_episode(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(onset="2023-01-01", abatement="2024-02-01", active=False),
            condition(onset="2024-09-01"),
            rx("citalopram", "2023-06-01", days=300, dose=40), phq9(20, "2023-05-20"), phq9(19, "2023-08-20"),
            rx("sertraline", "2024-09-10", days=150), phq9(20, "2024-09-05"), phq9(18, "2024-12-01"))["mdd"]
    assert {t.treatment: t.episode for t in a.trials} == {"citalopram": "previous", "sertraline": "current"}
    assert a.episode_start == date(2024, 9, 1)


def test_the_time_after_the_last_treatment_never_ends_an_episode_by_itself(terminology: Terminology) -> None:
    a = run(terminology.rules, condition(onset="2022-12-01"), rx("sertraline", "2023-01-01", days=120),
            phq9(20, "2022-12-28"), phq9(18, "2023-04-01"))["mdd"]
    assert (a.episode_start, trial(a, "sertraline").episode, a.stage) == (None, "current", "I")
