"""Treatment history → courses: medication windows with dose segments and adherence, session courses.

How a medication window is built (clinical-spec §2, v2):
- Orders give a window from authoredOn over the expected supply × (1 + repeats); the adapter has
  already cut it at a `boundsPeriod.end` or at the stop date of a stopped/cancelled order (`end`).
  An active order with no supply and no end is open for at most `stale_order_cap_days` after its
  authoredOn or its last dispense, whichever is later (caveat `window-assumed`), never to the as-of
  date decades later. A finished order with no supply covers `default_order_supply_days`. An
  open-ended or stopped order is cut short by the next order of the same ingredient. Statements
  give their effective period; administrations their day.
- Exposures of one ingredient whose gap is ≤ `medication_merge_gap_days` form one course.
- Dispenses measure adherence inside the window: the proportion of days covered by the PQA method
  (an early refill's supply starts when the previous one runs out; capped at the window's end).
- A dispense outside every order window of its drug is still exposure: it extends a window it falls
  within `medication_merge_gap_days` of, or starts a dispense-defined course of its own.
- Dispense-defined courses: consecutive fills belong to one course while the gap between one fill's
  coverage end and the next fill is ≤ max(`refill_gap_days`, the previous fill's days supply).
- A switch (`cut_at_switches`): when another antidepressant starts and this drug's fills stop (no
  fill begins after that start + `switch_fill_stop_days`), the window ends where the last fill's
  coverage ends; unused refills are neither exposure nor nonadherence.
- Daily dose changes become segments; weeks at an adequate dose are summed over segments at or
  above the ingredient's minimum.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from fhirtrd.domain.model import Dispense, DoseSegment, MedicationExposure, PatientRecord, ProcedureEvent
from fhirtrd.domain.rules import Rules

ONE_DAY = timedelta(days=1)
EARLY_FILL_DAYS = 7  # a fill up to a week before the window starts belongs to it (policy, v1)


@dataclass(frozen=True, slots=True)
class Span:
    start: date
    end: date  # inclusive
    dose: float | None
    ref: str
    stopped: bool = False
    stop_reason: str | None = None
    open_ended: bool = False
    assumed: bool = False  # the end is the stale-order cap (window-assumed)
    active_order: bool = False
    bedtime: bool = False
    prn: bool = False
    reasons: frozenset[str] = frozenset()
    dispensed: bool = False  # a span defined by a dispense, not by an order or statement


@dataclass
class Course:
    """One continuous course of one treatment, before it is judged for a disorder."""

    treatment: str
    kind: str  # medication | psychotherapy | ect | rtms
    start: date
    end: date
    ongoing: bool
    refs: list[str] = field(default_factory=list)
    segments: list[DoseSegment] = field(default_factory=list)
    pdc: float | None = None
    stopped: bool = False
    stop_reason: str | None = None
    sessions: int | None = None
    laterality: str | None = None
    dates: list[date] = field(default_factory=list)
    fills: list[Dispense] = field(default_factory=list)
    reasons: frozenset[str] = frozenset()
    bedtime: bool = False
    prn: bool = False
    window_assumed: bool = False
    active_order: bool = False
    adjunct: bool = False

    @property
    def max_dose(self) -> float | None:
        doses = [s.daily_dose for s in self.segments if s.daily_dose is not None]
        return max(doses) if doses else None

    def days_at_or_above(self, minimum: float) -> int:
        return sum((s.end - s.start).days + 1 for s in self.segments
                   if s.daily_dose is not None and s.daily_dose >= minimum)


def coverage_end(f: Dispense) -> date:
    """The last day a fill covers on its own."""
    return f.handed_over + timedelta(days=max(f.days_supply, 1) - 1)


def medication_courses(record: PatientRecord, rules: Rules, as_of: date) -> list[Course]:
    """Every medication course of the patient, for ingredients known to the rules."""
    by_drug: dict[str, list[MedicationExposure]] = defaultdict(list)
    for e in record.exposures:
        by_drug[e.ingredient].append(e)
    fills: dict[str, list[Dispense]] = defaultdict(list)
    for d in record.dispenses:
        fills[d.ingredient].append(d)
    gap = int(rules.t("medication_merge_gap_days"))
    courses: list[Course] = []
    for ingredient in sorted(set(by_drug) | set(fills)):
        drug_fills = sorted(fills.get(ingredient, []), key=lambda d: (d.handed_over, d.ref))
        groups = _merge(_spans(by_drug.get(ingredient, []), drug_fills, rules, as_of), gap)
        loose: list[Span] = []
        for f in drug_fills:
            if any(g[0].start - timedelta(days=EARLY_FILL_DAYS) <= f.handed_over <= max(s.end for s in g)
                   for g in groups):
                continue
            span = Span(f.handed_over, min(as_of, coverage_end(f)), f.daily_dose, f.ref, dispensed=True)
            near = next((g for g in groups if _near(g, f, gap)), None)
            if near is not None:
                near.append(span)  # extends the nearest order window
            else:
                loose.append(span)
        groups += _refill_courses(loose, drug_fills, rules)
        for group in sorted(groups, key=lambda g: g[0].start):
            courses.append(_course(ingredient, group, drug_fills, as_of))
    return courses


def _near(group: list[Span], f: Dispense, gap: int) -> bool:
    """A fill within the merge gap after a window's end, or whose coverage ends within it before the start."""
    g_start, g_end = group[0].start, max(s.end for s in group)
    if f.handed_over > g_end:
        return (f.handed_over - g_end).days - 1 <= gap
    return (g_start - coverage_end(f)).days - 1 <= gap


def _spans(exposures: list[MedicationExposure], fills: list[Dispense], rules: Rules, as_of: date) -> list[Span]:
    default_days = int(rules.t("default_order_supply_days"))
    cap = int(rules.t("stale_order_cap_days"))
    ordered = sorted(exposures, key=lambda e: (e.start, e.ref))
    spans: list[Span] = []
    for i, e in enumerate(ordered):
        open_ended = assumed = False
        stale = e.end_assumed or (e.source == "request" and e.active and e.end is None and e.supply_days is None)
        if e.end is not None and not e.end_assumed:
            end = e.end
        elif e.supply_days is not None:
            end = e.start + timedelta(days=e.supply_days - 1)
        elif stale:
            last_fill = max((f.handed_over for f in fills if f.handed_over >= e.start), default=e.start)
            end, open_ended = max(e.start, last_fill) + timedelta(days=cap), True
            assumed = end < as_of
        elif e.active or (e.source == "statement" and not e.stopped):
            end, open_ended = as_of, True
        else:
            end = e.start + timedelta(days=default_days - 1)
        nxt = next((o for o in ordered[i + 1:] if o.start > e.start), None)
        if (e.stopped or open_ended) and nxt is not None and nxt.start <= end:
            end, assumed = nxt.start - ONE_DAY, False  # cut short (or superseded) by the next order
        spans.append(Span(e.start, min(max(end, e.start), as_of), e.daily_dose, e.ref, e.stopped,
                          e.stop_reason, open_ended, assumed, e.active and e.source == "request",
                          e.bedtime, e.prn, e.reasons))
    return spans


def _merge(spans: list[Span], gap_days: int) -> list[list[Span]]:
    groups: list[list[Span]] = []
    end: date | None = None
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        if groups and end is not None and (s.start - end).days - 1 <= gap_days:
            groups[-1].append(s)
            end = max(end, s.end)
        else:
            groups.append([s])
            end = s.end
    return groups


def _refill_courses(spans: list[Span], fills: list[Dispense], rules: Rules) -> list[list[Span]]:
    """Dispense-defined courses: a late refill within the permissible gap continues the course (v2)."""
    supply = {f.ref: f.days_supply for f in fills}
    minimum_gap = int(rules.t("refill_gap_days"))
    groups: list[list[Span]] = []
    covered_to: date | None = None
    for s in sorted(spans, key=lambda s: (s.start, s.ref)):
        if groups and covered_to is not None:
            allowed = max(minimum_gap, supply.get(groups[-1][-1].ref, 0))
            if (s.start - covered_to).days - 1 <= allowed:
                groups[-1].append(s)
                covered_to = max(covered_to, s.end)
                continue
        groups.append([s])
        covered_to = s.end
    return groups


def _course(ingredient: str, spans: list[Span], fills: list[Dispense], as_of: date) -> Course:
    spans = sorted(spans, key=lambda s: (s.start, s.end))
    start = spans[0].start
    end = max(s.end for s in spans)
    last = max(spans, key=lambda s: (s.end, s.start))
    ongoing = end >= as_of and not last.stopped
    inside = [f for f in fills if start - timedelta(days=EARLY_FILL_DAYS) <= f.handed_over <= end]
    segments: list[DoseSegment] = []
    for i, s in enumerate(spans):
        seg_end = s.end
        if i + 1 < len(spans) and spans[i + 1].start <= s.end:
            seg_end = spans[i + 1].start - ONE_DAY
        dose = s.dose
        if dose is None:
            doses = [f.daily_dose for f in inside if f.daily_dose is not None and s.start <= f.handed_over <= s.end]
            dose = max(doses) if doses else None
        if seg_end >= s.start:
            segments.append(DoseSegment(s.start, seg_end, dose))
    refs = [s.ref for s in spans if not s.dispensed] + [f.ref for f in inside]
    pdc = proportion_of_days_covered(inside, start, end) if inside else None
    ordered = [s for s in spans if not s.dispensed]
    return Course(treatment=ingredient, kind="medication", start=start, end=end, ongoing=ongoing,
                  refs=list(dict.fromkeys(refs)), segments=_join(segments), pdc=pdc, stopped=last.stopped,
                  stop_reason=last.stop_reason, fills=inside,
                  reasons=frozenset(r for s in ordered for r in s.reasons),
                  bedtime=bool(ordered) and all(s.bedtime for s in ordered),
                  prn=bool(ordered) and all(s.prn for s in ordered),
                  window_assumed=last.assumed, active_order=any(s.active_order for s in ordered),
                  dates=sorted({s.start for s in spans}))


def _join(segments: list[DoseSegment]) -> list[DoseSegment]:
    """Adjacent segments with the same dose become one."""
    out: list[DoseSegment] = []
    for s in segments:
        if out and out[-1].daily_dose == s.daily_dose and (s.start - out[-1].end).days <= 1:
            out[-1] = DoseSegment(out[-1].start, max(out[-1].end, s.end), s.daily_dose)
        else:
            out.append(s)
    return out


def covered_until(fills: list[Dispense]) -> date | None:
    """The last day covered by the fills, early refills carried forward (PQA)."""
    cursor: date | None = None
    for f in sorted(fills, key=lambda f: (f.handed_over, f.ref)):
        begin = f.handed_over if cursor is None else max(f.handed_over, cursor + ONE_DAY)
        cursor = begin + timedelta(days=max(f.days_supply, 1) - 1)
    return cursor


def proportion_of_days_covered(fills: list[Dispense], start: date, end: date) -> float:
    """PDC by the PQA method: days in [start, end] covered by a fill, an early refill's supply
    shifted to start when the previous one runs out, ÷ the days in the window."""
    days = (end - start).days + 1
    if days <= 0:
        return 0.0
    covered = 0
    cursor = start
    for f in sorted(fills, key=lambda f: (f.handed_over, f.ref)):
        begin = max(f.handed_over, cursor)
        stop = min(begin + timedelta(days=f.days_supply - 1), end)
        if stop >= begin and begin <= end:
            covered += (stop - max(begin, start)).days + 1 if stop >= start else 0
            cursor = stop + ONE_DAY
    return round(min(1.0, covered / days), 4)


def cut_at_switches(courses: list[Course], switchable: set[int], rules: Rules, as_of: date) -> None:
    """End each antidepressant course where its fills stopped after another one started (v2 switch).

    `switchable` holds id() of the antidepressant courses that are not adjuncts. Only a course with
    dispenses is cut; without any dispense the order's own supply stands (clinical-spec §2).
    """
    grace = timedelta(days=int(rules.t("switch_fill_stop_days")))
    for c in courses:
        if id(c) not in switchable or not c.fills:
            continue
        others = [o for o in courses if o is not c and id(o) in switchable and c.start < o.start <= c.end]
        for o in sorted(others, key=lambda o: o.start):
            if any(f.handed_over > o.start + grace for f in c.fills):
                continue
            last_day = covered_until(c.fills)
            if last_day is None or last_day >= c.end:
                break
            _truncate(c, max(last_day, c.start), as_of)
            break


def _truncate(c: Course, end: date, as_of: date) -> None:
    c.end = end
    c.ongoing = end >= as_of and not c.stopped
    c.window_assumed = False
    c.segments = [DoseSegment(s.start, min(s.end, end), s.daily_dose) for s in c.segments if s.start <= end]
    c.fills = [f for f in c.fills if f.handed_over <= end]
    c.pdc = proportion_of_days_covered(c.fills, c.start, end) if c.fills else None


def procedure_courses(procedures: tuple[ProcedureEvent, ...] | list[ProcedureEvent], rules: Rules,
                      as_of: date) -> list[Course]:
    """Psychotherapy (CBT and other structured therapy), ECT and rTMS sessions grouped into courses."""
    groups = {"psychotherapy": ("psychotherapy", "cbt"), "ect": ("ect",), "rtms": ("rtms",)}
    gaps = {"psychotherapy": int(rules.t("psychotherapy_gap_days")), "ect": int(rules.t("ect_gap_days")),
            "rtms": int(rules.t("ect_gap_days"))}
    courses: list[Course] = []
    for kind, concepts in groups.items():
        events = sorted((p for p in procedures if p.concept in concepts), key=lambda p: (p.when, p.ref))
        current: list[ProcedureEvent] = []
        for p in events + [None]:  # type: ignore[list-item]
            if p is not None and (not current or (p.when - current[-1].when).days <= gaps[kind]):
                current.append(p)
                continue
            if current:
                first, last = current[0].when, current[-1].when
                sides = {c.laterality for c in current if c.laterality}
                name = "cbt" if kind == "psychotherapy" and all(c.concept == "cbt" for c in current) else kind
                courses.append(Course(
                    treatment=name, kind=kind, start=first, end=last,
                    ongoing=(as_of - last).days <= gaps[kind], refs=[c.ref for c in current],
                    sessions=len({c.when for c in current}),
                    laterality="bilateral" if "bilateral" in sides else ("unilateral" if sides else None),
                    dates=[c.when for c in current]))
            current = [p] if p is not None else []
    return courses
