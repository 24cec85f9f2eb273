"""The treatment-resistance timeline as pure functions: assessment JSON in, a layout and an SVG string out.

`layout()` places every trial of one assessment (the JSON contract, clinical-spec §9) on a time axis:
one lane per treatment class, overlapping trials of a class stacked in rows, each dose segment shaded
by its ratio to the minimum adequate dose; below, one score lane per instrument with the remission
line and the response line (thresholds from mappings/instruments.csv, passed in as `Scale`s).
`render_svg()` draws that layout. No clock, no files: `as_of` and the scales are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any

from fhirtrd.report.labels import display

WIDTH = 960
GUTTER = 150  # lane labels on the left
RIGHT = 30
TOP = 34  # the time axis
ROW_H = 22
LANE_GAP = 10
SCORE_H = 90
MIN_SPAN_DAYS = 56  # a very short history still spans eight weeks, so a bar is never a hairline
# Trial kinds drawn apart from plain monotherapy trials (clinical-spec §2: augmentation, adjunct, advanced).
ADD_ON_KINDS = frozenset({"augmentation", "adjunct", "advanced"})


@dataclass(frozen=True, slots=True)
class Scale:
    """One instrument's range and thresholds (mappings/instruments.csv)."""

    instrument: str
    low: float
    high: float
    remission_max: float | None
    response_min_change: float | None


@dataclass(frozen=True, slots=True)
class ScorePoint:
    instrument: str
    when: date
    value: float
    ref: str


@dataclass(frozen=True, slots=True)
class TimeScale:
    """Days → x pixels over [start, end]."""

    start: date
    end: date
    x0: float = GUTTER
    x1: float = WIDTH - RIGHT

    def x(self, d: date) -> float:
        span = max((self.end - self.start).days, 1)
        return round(self.x0 + (self.x1 - self.x0) * (d - self.start).days / span, 1)

    def ticks(self) -> list[date]:
        """First days of months (1, 3, 6, 12 or 24-month steps) chosen so that 3-12 ticks show."""
        months = (self.end.year - self.start.year) * 12 + self.end.month - self.start.month
        step = next((s for s in (1, 3, 6, 12, 24, 60) if months / s <= 12), 120)
        y, m = self.start.year, self.start.month
        out: list[date] = []
        while True:
            m += 1
            if m > 12:
                y, m = y + 1, 1
            d = date(y, m, 1)
            if d > self.end:
                return out
            if (y * 12 + m - 1) % step == 0:
                out.append(d)


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    width: float
    daily_dose: float | None
    ratio: float | None  # daily dose / minimum adequate dose


@dataclass(frozen=True, slots=True)
class Bar:
    """One trial on its lane."""

    index: int  # position in the assessment's trials (the data table uses the same numbers)
    trial: Mapping[str, Any]
    lane: int
    row: int
    x: float
    width: float
    y: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Lane:
    label: str
    y: float
    rows: int


@dataclass(frozen=True, slots=True)
class ScoreLane:
    scale: Scale
    y: float
    points: tuple[tuple[float, float, ScorePoint], ...]  # (x, y, point)
    remission_y: float | None
    response: tuple[tuple[float, float, float, float], ...]  # (x0, x1, y, threshold) per trial with a baseline

    def value_y(self, value: float) -> float:
        span = max(self.scale.high - self.scale.low, 1)
        return round(self.y + SCORE_H - SCORE_H * (value - self.scale.low) / span, 1)


@dataclass(frozen=True, slots=True)
class Layout:
    time: TimeScale
    lanes: tuple[Lane, ...]
    bars: tuple[Bar, ...]
    score_lanes: tuple[ScoreLane, ...]
    episode_x: float | None
    as_of_x: float
    height: float
    title: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def time_span(assessment: Mapping[str, Any], scores: Sequence[ScorePoint], as_of: date) -> tuple[date, date]:
    """The dates the axis must show: every trial, every score, the episode start and `as_of`."""
    days = [as_of]
    for t in assessment.get("trials", []):
        days += [d for d in (_d(t.get("start")), _d(t.get("end"))) if d]
    days += [p.when for p in scores]
    if assessment.get("episode_start"):
        days.append(date.fromisoformat(assessment["episode_start"]))
    start, end = min(days), max(days)
    if (end - start).days < MIN_SPAN_DAYS:
        start = end - timedelta(days=MIN_SPAN_DAYS)
    pad = timedelta(days=max(3, (end - start).days // 40))
    return start - pad, end + pad


def _rows(intervals: Sequence[tuple[date, date]]) -> list[int]:
    """Greedy interval packing: each interval gets the first row whose last bar ended before it starts."""
    ends: list[date] = []
    rows: list[int] = []
    for start, end in intervals:
        for i, last in enumerate(ends):
            if last < start:
                ends[i] = end
                rows.append(i)
                break
        else:
            ends.append(end)
            rows.append(len(ends) - 1)
    return rows


def layout(assessment: Mapping[str, Any], scores: Sequence[ScorePoint], scales: Mapping[str, Scale],
           as_of: date) -> Layout:
    """Place the trials and scores of one assessment. Pure: the same input gives the same layout."""
    time = TimeScale(*time_span(assessment, scores, as_of))
    trials = list(assessment.get("trials", []))
    order: dict[str, date] = {}
    for t in trials:
        cls = t.get("class") or t["kind"]
        order[cls] = min(order.get(cls, date.max), date.fromisoformat(t["start"]))
    lane_names = sorted(order, key=lambda c: (order[c], c))
    lanes: list[Lane] = []
    bars: list[Bar] = []
    y = float(TOP + 8)
    for li, name in enumerate(lane_names):
        members = sorted((i for i, t in enumerate(trials) if (t.get("class") or t["kind"]) == name),
                         key=lambda i: (trials[i]["start"], trials[i]["end"], i))
        spans = [(date.fromisoformat(trials[i]["start"]), date.fromisoformat(trials[i]["end"])) for i in members]
        rows = _rows(spans)
        n_rows = max(rows) + 1 if rows else 1
        lanes.append(Lane(name, y, n_rows))
        for i, (start, end), row in zip(members, spans, rows, strict=True):
            t = trials[i]
            x0, x1 = time.x(start), time.x(end)
            segs = []
            minimum = t.get("min_adequate_dose")
            for s in t.get("segments") or [{"start": t["start"], "end": t["end"], "daily_dose": t.get("daily_dose")}]:
                sx0, sx1 = time.x(date.fromisoformat(s["start"])), time.x(date.fromisoformat(s["end"]))
                dose = s.get("daily_dose")
                ratio = round(dose / minimum, 2) if dose is not None and minimum else None
                segs.append(Segment(sx0, max(sx1 - sx0, 2.0), dose, ratio))
            bars.append(Bar(i, t, li, row, x0, max(x1 - x0, 3.0), y + row * ROW_H, tuple(segs)))
        y += n_rows * ROW_H + LANE_GAP
    y += 16
    score_lanes: list[ScoreLane] = []
    by_instrument: dict[str, list[ScorePoint]] = {}
    for p in sorted(scores, key=lambda p: (p.when, p.ref)):
        if p.instrument in scales:
            by_instrument.setdefault(p.instrument, []).append(p)
    for name in sorted(by_instrument, key=lambda n: (by_instrument[n][0].when, n)):
        scale = scales[name]
        lane = ScoreLane(scale, y, (), None, ())
        points = tuple((time.x(p.when), lane.value_y(p.value), p) for p in by_instrument[name])
        remission = lane.value_y(scale.remission_max) if scale.remission_max is not None else None
        response = []
        if scale.response_min_change is not None:
            for t in trials:
                if t.get("instrument") == name and t.get("baseline") is not None:
                    threshold = round(t["baseline"] * (1 - scale.response_min_change), 1)
                    response.append((time.x(date.fromisoformat(t["start"])), time.x(date.fromisoformat(t["end"])),
                                     lane.value_y(threshold), threshold))
        score_lanes.append(ScoreLane(scale, y, points, remission, tuple(response)))
        y += SCORE_H + 34
    episode = assessment.get("episode_start")
    return Layout(time=time, lanes=tuple(lanes), bars=tuple(bars), score_lanes=tuple(score_lanes),
                  episode_x=time.x(date.fromisoformat(episode)) if episode else None,
                  as_of_x=time.x(as_of), height=y + 10)


def _trial_words(t: Mapping[str, Any]) -> str:
    """One sentence a clinician can read: what, when, dose against the minimum, verdict and why."""
    dose = ""
    if t.get("daily_dose") is not None:
        dose = f", up to {t['daily_dose']:g} mg/day"
        if t.get("min_adequate_dose"):
            dose += f" (minimum adequate {t['min_adequate_dose']:g})"
    if t.get("sessions") is not None:
        dose += f", {t['sessions']} sessions"
    end = "ongoing" if t.get("ongoing") else t["end"]
    verdict = "adequate" if t.get("adequate") else "not adequate"
    why = "; ".join(f"{display(f)}: {_reason(f)}" for f in t.get("findings", []))
    failed = "; failed" if t.get("failed") else ""
    return (f"{t['treatment']} ({display(t['kind'])}, {t.get('class') or '-'}) {t['start']} to {end}{dose}: "
            f"{verdict}{failed}; outcome {display(t.get('outcome', 'unknown')).lower()}" + (f". {why}" if why else ""))


def _reason(code: str) -> str:
    from fhirtrd.report.labels import definition

    return definition(code) or display(code)


NON_DRUG_FILL = "#2e7d6b"


def _fill(ratio: float | None, non_drug: bool = False) -> str:
    """Dose shading: at or above the minimum adequate dose is dark, below it lighter, unknown hatched;
    a non-drug treatment (psychotherapy, ECT: counted in sessions, no dose) is teal."""
    if non_drug:
        return NON_DRUG_FILL
    if ratio is None:
        return "url(#dose-unknown)"
    if ratio >= 1:
        return "#1f5f99"
    return "#8fb3d6" if ratio >= 0.5 else "#cfe0f0"


def render_svg(lay: Layout, *, title: str = "Treatment timeline") -> str:
    """The layout as an accessible SVG (role img, a title and a description; every bar has a <title>)."""
    out: list[str] = []
    add = out.append
    add(f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" aria-labelledby="tl-title tl-desc" '
        f'viewBox="0 0 {WIDTH} {lay.height:g}" width="{WIDTH}" height="{lay.height:g}">')
    add(f'<title id="tl-title">{escape(title)}</title>')
    add(f'<desc id="tl-desc">{len(lay.bars)} treatment trial(s) in {len(lay.lanes)} lane(s) and '
        f'{len(lay.score_lanes)} score lane(s); the table below lists the same data.</desc>')
    add('<defs><pattern id="dose-unknown" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e8eef5"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#6b8fb5" stroke-width="2"/></pattern></defs>')
    # time axis
    add(f'<g class="axis"><line x1="{GUTTER}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="#555"/>')
    for d in lay.time.ticks():
        x = lay.time.x(d)
        label = d.strftime("%b %Y") if d.month != 1 else str(d.year)
        add(f'<line x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{lay.height - 6:g}" stroke="#e3e3e3"/>'
            f'<text x="{x}" y="{TOP - 8}" text-anchor="middle" font-size="11" fill="#333">{escape(label)}</text>')
    add("</g>")
    for lane in lay.lanes:
        add(f'<text class="lane-label" x="{GUTTER - 8}" y="{lane.y + 15}" text-anchor="end" font-size="12" '
            f'fill="#222">{escape(display(lane.label))}</text>')
    for bar in lay.bars:
        t = bar.trial
        add_on = t["kind"] in ADD_ON_KINDS
        classes = ["trial", "adequate" if t.get("adequate") else "inadequate", f"kind-{t['kind']}"]
        if t.get("failed"):
            classes.append("failed")
        if t.get("ongoing"):
            classes.append("ongoing")
        h = 12 if add_on else 16
        top = bar.y + (ROW_H - h) / 2
        add(f'<g class="{" ".join(classes)}" data-trial="{bar.index + 1}" data-treatment="{escape(t["treatment"])}">'
            f'<title>{escape(_trial_words(t))}</title>')
        non_drug = t.get("min_adequate_dose") is None and t.get("sessions") is not None
        for s in bar.segments:
            dose = f"{s.daily_dose:g} mg/day" if s.daily_dose is not None else \
                (f"{t['sessions']} sessions" if non_drug else "dose unknown")
            add(f'<rect class="dose" x="{s.x}" y="{top}" width="{s.width:g}" height="{h}" '
                f'fill="{_fill(s.ratio, non_drug)}" '
                f'data-ratio="{"" if s.ratio is None else s.ratio}"><title>{escape(dose)}</title></rect>')
        stroke = 'stroke="#111" stroke-width="2"' if t.get("adequate") else \
            'stroke="#b3261e" stroke-width="2" stroke-dasharray="5 3"'
        rx = 6 if add_on else 0
        add(f'<rect class="outline" x="{bar.x}" y="{top}" width="{bar.width:g}" height="{h}" rx="{rx}" '
            f'fill="none" {stroke}/>')
        label = t["treatment"] + (f" ({display(t['kind']).lower()})" if add_on else "")
        add(f'<text x="{bar.x + 3}" y="{top - 2}" font-size="10" fill="#222">{escape(label)}</text>')
        end = bar.x + bar.width
        if t.get("ongoing"):
            add(f'<path class="ongoing-arrow" d="M{end} {top - 2} l8 {h / 2 + 2} l-8 {h / 2 + 2} z" fill="#111">'
                '<title>ongoing</title></path>')
            end += 9
        if t.get("failed"):
            add(f'<g class="failure"><title>Trial failed ({escape(display(t.get("outcome", "unknown")).lower())})'
                f'</title><path d="M{end + 3} {top + 2} l10 {h - 4} M{end + 13} {top + 2} l-10 {h - 4}" '
                f'stroke="#b3261e" stroke-width="2.5"/></g>')
            end += 16
        for f in t.get("findings", []):
            add(f'<g class="finding" data-code="{escape(f)}"><title>{escape(display(f))}: {escape(_reason(f))}'
                f'</title><path d="M{end + 8} {top + h} l6 -{h} l6 {h} z" fill="#e6a100" stroke="#7a5500"/>'
                f'<text x="{end + 24}" y="{top + h - 3}" font-size="10" fill="#5c3d00">{escape(display(f))}</text></g>')
            end += 28 + 5.5 * len(display(f))
        add("</g>")
    for sl in lay.score_lanes:
        sc = sl.scale
        add(f'<g class="score-lane" data-instrument="{escape(sc.instrument)}">')
        add(f'<text class="lane-label" x="{GUTTER - 8}" y="{sl.y + 12}" text-anchor="end" font-size="12" '
            f'fill="#222">{escape(display(sc.instrument))}</text>'
            f'<text x="{GUTTER - 8}" y="{sl.y + 26}" text-anchor="end" font-size="10" fill="#555">'
            f'{sc.low:g}-{sc.high:g}</text>')
        add(f'<rect x="{GUTTER}" y="{sl.y}" width="{WIDTH - RIGHT - GUTTER}" height="{SCORE_H}" fill="none" '
            'stroke="#bbb"/>')
        if sl.remission_y is not None and sc.remission_max is not None:
            add(f'<g class="threshold remission"><title>Remission: {escape(display(sc.instrument))} at or below '
                f'{sc.remission_max:g}</title><line x1="{GUTTER}" y1="{sl.remission_y}" x2="{WIDTH - RIGHT}" '
                f'y2="{sl.remission_y}" stroke="#1b7f3b" stroke-width="1.5" stroke-dasharray="6 3"/>'
                f'<text x="{WIDTH - RIGHT - 4}" y="{sl.remission_y - 3}" text-anchor="end" font-size="10" '
                f'fill="#14602c">remission &#8804; {sc.remission_max:g}</text></g>')
        for x0, x1, ry, threshold in sl.response:
            add(f'<g class="threshold response"><title>Response: {escape(display(sc.instrument))} at or below '
                f'{threshold:g} ({(sc.response_min_change or 0) * 100:g} % below the trial baseline)</title>'
                f'<line x1="{x0}" y1="{ry}" x2="{x1}" y2="{ry}" stroke="#6a3d9a" stroke-width="1.5" '
                f'stroke-dasharray="2 2"/><text x="{x0 + 2}" y="{ry - 3}" font-size="10" fill="#4b2a6e">'
                f'response &#8804; {threshold:g}</text></g>')
        if len(sl.points) > 1:
            path = " ".join(f"{x},{y}" for x, y, _ in sl.points)
            add(f'<polyline points="{path}" fill="none" stroke="#333" stroke-width="1.5"/>')
        for x, y, p in sl.points:
            add(f'<circle class="score" cx="{x}" cy="{y}" r="4" fill="#333"><title>{escape(display(p.instrument))} '
                f'{p.value:g} on {p.when.isoformat()} ({escape(p.ref)})</title></circle>')
        add("</g>")
    if lay.episode_x is not None:
        add(f'<g class="episode-start"><title>Current episode starts</title><line x1="{lay.episode_x}" y1="{TOP}" '
            f'x2="{lay.episode_x}" y2="{lay.height - 6:g}" stroke="#8a4b00" stroke-width="1.5" '
            f'stroke-dasharray="8 4"/><text x="{lay.episode_x + 3}" y="{TOP + 10}" font-size="10" '
            f'fill="#6b3a00">episode start</text></g>')
    add(f'<g class="as-of"><line x1="{lay.as_of_x}" y1="{TOP}" x2="{lay.as_of_x}" y2="{lay.height - 6:g}" '
        f'stroke="#000" stroke-width="1"/><text x="{lay.as_of_x - 3}" y="{lay.height - 8:g}" text-anchor="end" '
        f'font-size="10" fill="#000">assessed</text></g>')
    add("</svg>")
    return "".join(out)


def timeline_svg(assessment: Mapping[str, Any], scores: Sequence[ScorePoint], scales: Mapping[str, Scale],
                 as_of: date) -> str:
    """Layout and draw in one call."""
    disorder = display(assessment.get("disorder", ""))
    return render_svg(layout(assessment, scores, scales, as_of), title=f"Treatment timeline: {disorder}")
