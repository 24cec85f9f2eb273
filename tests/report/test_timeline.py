"""The timeline layout: scales, lanes, overlapping and ongoing trials, short and long histories, no scores."""

from __future__ import annotations

from datetime import date

from fhirtrd.report.timeline import GUTTER, RIGHT, WIDTH, Scale, ScorePoint, TimeScale, layout, render_svg
from fhirtrd.terminology import load_terminology
from fhirtrd.report.page import scales_from

AS_OF = date(2025, 1, 15)


def trial(treatment: str, cls: str, start: str, end: str, **kw: object) -> dict[str, object]:
    t: dict[str, object] = {"treatment": treatment, "kind": "medication", "class": cls, "start": start, "end": end,
                            "ongoing": False, "adequate": True, "findings": [], "outcome": "nonresponse",
                            "failed": False, "daily_dose": 100.0, "min_adequate_dose": 50.0, "segments": []}
    t.update(kw)
    return t


def scales() -> dict[str, Scale]:
    return scales_from(load_terminology().rules)


def test_time_scale_maps_first_and_last_day_to_the_plot_edges() -> None:
    ts = TimeScale(date(2024, 1, 1), date(2024, 12, 31))
    assert ts.x(date(2024, 1, 1)) == GUTTER
    assert ts.x(date(2024, 12, 31)) == WIDTH - RIGHT
    assert ts.x(date(2024, 7, 1)) > ts.x(date(2024, 6, 30))


def test_one_lane_per_class_and_one_bar_per_trial() -> None:
    a = {"disorder": "mdd", "trials": [trial("sertraline", "SSRI", "2024-01-01", "2024-03-01"),
                                       trial("venlafaxine", "SNRI", "2024-03-10", "2024-06-01"),
                                       trial("citalopram", "SSRI", "2024-07-01", "2024-09-01")]}
    lay = layout(a, [], scales(), AS_OF)
    assert [lane.label for lane in lay.lanes] == ["SSRI", "SNRI"]
    assert len(lay.bars) == 3
    ssri = [b for b in lay.bars if b.lane == 0]
    assert {b.row for b in ssri} == {0}  # no overlap: one row
    assert lay.bars[0].x < lay.bars[1].x


def test_overlapping_trials_of_one_class_are_stacked_not_drawn_over_each_other() -> None:
    a = {"disorder": "mdd", "trials": [trial("sertraline", "SSRI", "2024-01-01", "2024-05-01"),
                                       trial("escitalopram", "SSRI", "2024-04-01", "2024-08-01")]}
    lay = layout(a, [], scales(), AS_OF)
    assert len(lay.lanes) == 1 and lay.lanes[0].rows == 2
    assert lay.bars[0].y != lay.bars[1].y


def test_dose_segments_are_shaded_by_their_ratio_to_the_minimum_adequate_dose() -> None:
    t = trial("sertraline", "SSRI", "2024-01-01", "2024-04-01", segments=[
        {"start": "2024-01-01", "end": "2024-02-01", "daily_dose": 25.0},
        {"start": "2024-02-01", "end": "2024-04-01", "daily_dose": 100.0}])
    lay = layout({"disorder": "mdd", "trials": [t]}, [], scales(), AS_OF)
    assert [s.ratio for s in lay.bars[0].segments] == [0.5, 2.0]
    svg = render_svg(lay)
    assert svg.count('class="dose"') == 2 and "#1f5f99" in svg and "#8fb3d6" in svg


def test_very_short_history_still_spans_eight_weeks_and_has_month_ticks() -> None:
    a = {"disorder": "mdd", "trials": [trial("sertraline", "SSRI", "2025-01-10", "2025-01-12")]}
    lay = layout(a, [], scales(), AS_OF)
    assert (lay.time.end - lay.time.start).days >= 56
    assert lay.bars[0].width >= 3
    assert 1 <= len(lay.time.ticks()) <= 4


def test_very_long_history_gets_yearly_ticks_at_most_twelve() -> None:
    a = {"disorder": "mdd", "trials": [trial("imipramine", "TCA", "1995-03-01", "1996-01-01"),
                                       trial("sertraline", "SSRI", "2024-01-01", "2024-06-01")]}
    ticks = layout(a, [], scales(), AS_OF).time.ticks()
    assert 3 <= len(ticks) <= 12
    assert all(t.month == 1 for t in ticks)


def test_ongoing_trial_gets_an_arrow_and_failed_trial_a_cross() -> None:
    a = {"disorder": "mdd", "trials": [
        trial("sertraline", "SSRI", "2024-01-01", "2024-06-01", failed=True),
        trial("venlafaxine", "SNRI", "2024-06-10", "2025-01-15", ongoing=True)]}
    svg = render_svg(layout(a, [], scales(), AS_OF))
    assert svg.count('class="ongoing-arrow"') == 1
    assert svg.count('class="failure"') == 1


def test_inadequate_and_add_on_trials_look_different_and_findings_carry_their_reason() -> None:
    a = {"disorder": "mdd", "trials": [
        trial("sertraline", "SSRI", "2024-01-01", "2024-02-01", adequate=False, findings=["inadequate-duration"]),
        trial("lithium", "lithium", "2024-03-01", "2024-06-01", kind="augmentation")]}
    svg = render_svg(layout(a, [], scales(), AS_OF))
    assert 'stroke-dasharray="5 3"' in svg  # not adequate: dashed red outline
    assert 'rx="6"' in svg and "(augmentation)" in svg.lower()
    assert 'class="finding" data-code="inadequate-duration"' in svg
    assert "Inadequate duration" in svg


def test_no_scores_means_no_score_lane() -> None:
    a = {"disorder": "mdd", "trials": [trial("sertraline", "SSRI", "2024-01-01", "2024-03-01")]}
    lay = layout(a, [], scales(), AS_OF)
    assert lay.score_lanes == ()
    assert "score-lane" not in render_svg(lay)


def test_score_lane_draws_remission_and_response_lines_from_the_mappings() -> None:
    sc = scales()
    a = {"disorder": "mdd", "trials": [trial("sertraline", "SSRI", "2024-01-01", "2024-04-01",
                                             instrument="hamd17", baseline=24.0)]}
    points = [ScorePoint("hamd17", date(2024, 1, 1), 24, "Observation/a"),
              ScorePoint("hamd17", date(2024, 4, 1), 20, "Observation/b")]
    lay = layout(a, points, sc, AS_OF)
    (lane,) = lay.score_lanes
    assert lane.remission_y == lane.value_y(sc["hamd17"].remission_max or 0)
    threshold = 24 * (1 - (sc["hamd17"].response_min_change or 0))
    assert [r[3] for r in lane.response] == [threshold]
    svg = render_svg(lay)
    assert f"remission &#8804; {sc['hamd17'].remission_max:g}" in svg
    assert f"response &#8804; {threshold:g}" in svg
    assert svg.count('class="score"') == 2


def test_a_psychotherapy_course_is_drawn_as_non_drug_not_as_an_unknown_dose() -> None:
    a = {"disorder": "sad", "trials": [trial("cbt", "psychotherapy", "2024-01-01", "2024-04-01", kind="psychotherapy",
                                             daily_dose=None, min_adequate_dose=None, sessions=14)]}
    svg = render_svg(layout(a, [], scales(), AS_OF))
    assert 'fill="#2e7d6b"' in svg and "url(#dose-unknown)" not in svg.split("</defs>")[1]
    assert "14 sessions" in svg
