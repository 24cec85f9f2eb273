"""Trial outcomes, score windows, instrument priority and episodes (clinical-spec §3)."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtrd.domain.model import Assessment, Trial
from fhirtrd.terminology import Terminology

from .conftest import (
    CITALOPRAM,
    SERTRALINE,
    VENLAFAXINE,
    assess,
    assessment,
    dosage,
    mdd,
    order,
    score,
    trials,
)

# one adequate 90-day sertraline trial, 1 Jan – 31 Mar 2025
TRIAL = order(SERTRALINE, "2025-01-01", days=90, rid="sert")


def judged(terminology: Terminology, scores: list[dict[str, Any]]) -> tuple[Assessment, Trial]:
    a = assessment(assess(terminology, [mdd(), TRIAL, *scores]))
    [t] = trials(a, "sertraline")
    return a, t


@pytest.mark.parametrize(("baseline_day", "endpoint_day", "used"), [
    ("2024-11-02", "2025-01-29", True),   # 60 days before the start; 28 days after it
    ("2024-11-01", "2025-02-10", False),  # baseline 61 days before: outside
    ("2025-01-08", "2025-02-10", True),   # baseline 7 days after the start
    ("2025-01-09", "2025-02-10", False),  # baseline 8 days after: outside
    ("2024-12-20", "2025-01-28", False),  # endpoint 27 days after the start: too early
    ("2024-12-20", "2025-04-14", True),   # endpoint 14 days after the end
    ("2024-12-20", "2025-04-15", False),  # endpoint 15 days after the end: outside
])
def test_baseline_and_endpoint_windows(terminology: Terminology, baseline_day: str, endpoint_day: str,
                                       used: bool) -> None:
    # §3: baseline from 60 days before to 7 days after the start; endpoint from 4 weeks after the
    # start to 14 days after the end. PHQ-9 20 → 15 is a 25 % change: partial response.
    _, t = judged(terminology, [score("phq9", 20, baseline_day, rid="base"),
                                score("phq9", 15, endpoint_day, rid="end")])
    if used:
        assert (t.outcome, t.instrument, t.baseline, t.endpoint, t.change) == ("partial-response", "phq9", 20, 15, 0.25)
        assert {"Observation/base", "Observation/end"} <= set(t.evidence)
    else:
        assert (t.outcome, t.instrument) == ("unknown", None)
        assert not {"Observation/base", "Observation/end"} & set(t.evidence)


def test_latest_score_in_each_window_is_used(terminology: Terminology) -> None:
    _, t = judged(terminology, [score("phq9", 24, "2024-12-01"), score("phq9", 20, "2024-12-28"),
                                score("phq9", 6, "2025-02-15"), score("phq9", 9, "2025-03-30")])
    assert (t.baseline, t.endpoint, t.change, t.outcome) == (20, 9, 0.55, "response")


def test_clinician_rated_instrument_wins_over_phq9(terminology: Terminology) -> None:
    # §3 priority: HAM-D before PHQ-9. PHQ-9 says remission (20 → 4); HAM-D says nonresponse (22 → 20).
    a, t = judged(terminology, [score("phq9", 20, "2024-12-20"), score("phq9", 4, "2025-03-20"),
                                score("hamd17", 22, "2024-12-21"), score("hamd17", 20, "2025-03-21")])
    assert (t.instrument, t.outcome, t.failed) == ("hamd17", "nonresponse", True)
    assert a.next_step.strategy == "switch"


def test_lower_priority_instrument_is_used_when_the_higher_has_no_pair(terminology: Terminology) -> None:
    # only a HAM-D baseline (no endpoint): the PHQ-9 pair decides
    _, t = judged(terminology, [score("hamd17", 22, "2024-12-21"),
                                score("phq9", 20, "2024-12-20"), score("phq9", 4, "2025-03-20")])
    assert (t.instrument, t.outcome) == ("phq9", "remission")


@pytest.mark.parametrize(("cgi_i", "outcome"), [(2, "response"), (3, "partial-response"), (4, "nonresponse")])
def test_cgi_improvement_is_the_fallback(terminology: Terminology, cgi_i: int, outcome: str) -> None:
    # §3 table: CGI-I 1–2 response, 3 partial, ≥ 4 nonresponse; used when no scale has a pair
    _, t = judged(terminology, [score("cgi-i", cgi_i, "2025-03-01")])
    assert (t.instrument, t.outcome, t.endpoint) == ("cgi-i", outcome, cgi_i)


@pytest.mark.parametrize(("instrument", "cut_off"), [("phq9", 4), ("hamd17", 7), ("madrs", 10), ("bdi2", 12)])
def test_remission_exactly_at_the_cut_off(terminology: Terminology, instrument: str, cut_off: int) -> None:
    # §3 table: remission is "at or below" the cut-off; one point above is not remission
    a, t = judged(terminology, [score(instrument, 20, "2024-12-20"), score(instrument, cut_off, "2025-03-20")])
    assert (t.outcome, t.failed, a.stage) == ("remission", False, "0")
    _, t = judged(terminology, [score(instrument, 20, "2024-12-20"), score(instrument, cut_off + 1, "2025-03-20")])
    assert t.outcome != "remission" and t.failed


def test_adequate_trial_without_scores_followed_by_a_switch_is_an_inferred_failure(terminology: Terminology) -> None:
    # §3 policy: no paired scores, but the patient was switched → failure with caveat failure-inferred
    a = assessment(assess(terminology, [mdd(), TRIAL, order(VENLAFAXINE, "2025-04-05", days=90, dose=dosage(225))]))
    sert = trials(a, "sertraline")[0]
    assert (sert.outcome, sert.failed, sert.failure_inferred) == ("unknown", True, True)
    assert "failure-inferred" in a.caveats and a.failed_adequate_trials == 1


# --- episodes ----------------------------------------------------------------------------------

EARLIER_FAILURES = [
    mdd(onset="2023-01-01"),
    order(CITALOPRAM, "2023-01-01", days=60, dose=dosage(40)),
    score("phq9", 20, "2022-12-20"), score("phq9", 18, "2023-02-25"),
    order(VENLAFAXINE, "2023-03-15", days=60, dose=dosage(225)),
    score("phq9", 18, "2023-03-14"), score("phq9", 17, "2023-05-10"),
    # sertraline starts < 12 months after venlafaxine ended (v2: a longer gap would start a new episode)
    order(SERTRALINE, "2024-03-01", days=90), score("phq9", 19, "2024-02-20"), score("phq9", 17, "2024-05-20"),
]
REMISSION_SCORES = [score("phq9", 3, "2023-08-01"), score("phq9", 2, "2023-09-01")]


def test_eight_weeks_of_remission_end_the_episode(terminology: Terminology) -> None:
    # §3: ≥ 8 weeks of remission scores (1 Aug → 30 Sep 2023 = 60 days) end the episode; the 2023
    # citalopram and venlafaxine failures belong to the previous episode and are not counted.
    a = assessment(assess(terminology, [*EARLIER_FAILURES, *REMISSION_SCORES, score("phq9", 3, "2023-09-30")]))
    episodes = {t.treatment: (t.episode, t.failed) for t in a.trials}
    assert episodes == {"citalopram": ("previous", True), "venlafaxine": ("previous", True),
                        "sertraline": ("current", True)}
    assert (a.stage, a.failed_adequate_trials, a.failed_classes, a.treatment_resistant) == ("I", 1, ("SSRI",), False)
    assert a.episode_start is not None and a.episode_start.isoformat() == "2023-10-01"


def test_seven_weeks_of_remission_do_not_end_the_episode(terminology: Terminology) -> None:
    # 1 Aug → 1 Sep 2023 is only a month of remission: all three failures count (stage II, TRD)
    a = assessment(assess(terminology, [*EARLIER_FAILURES, *REMISSION_SCORES]))
    assert {t.episode for t in a.trials} == {"current"}
    assert (a.stage, a.failed_adequate_trials, a.treatment_resistant) == ("II", 3, True)
    assert a.episode_start is None
