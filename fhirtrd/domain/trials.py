"""Treatment history → courses: medication windows with dose segments and adherence, therapy courses.

How a medication window is built (clinical-spec §2):
- Orders (MedicationRequest) give a window from authoredOn over the expected supply × (1 + repeats);
  an active order with no supply information is open-ended (the patient is on it now); a finished
  order with none covers `default_order_supply_days`. A stopped order is cut short by the next order
  of the same ingredient. Statements give their effective period; administrations their day.
- Exposures of one ingredient whose gap is ≤ `medication_merge_gap_days` form one course.
- Dispenses measure adherence inside the window (proportion of days covered, fills that overlap
  carried forward); only a drug with dispenses and nothing else takes its window from the fills.
- Daily dose changes become segments; weeks at an adequate dose are summed over segments at or
  above the ingredient's minimum.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from fhirtrd.domain.model import DoseSegment, MedicationExposure, PatientRecord, ProcedureEvent
from fhirtrd.domain.rules import Rules

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Span:
    start: date
    end: date  # inclusive
    dose: float | None
    ref: str
    stopped: bool = False
    stop_reason: str | None = None
    open_ended: bool = False


@dataclass
class Course:
    """One continuous course of one treatment, before it is judged for a disorder."""

    treatment: str
    kind: str  # medication | psychotherapy | ect
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

    @property
    def max_dose(self) -> float | None:
        doses = [s.daily_dose for s in self.segments if s.daily_dose is not None]
        return max(doses) if doses else None

    def days_at_or_above(self, minimum: float) -> int:
        return sum((s.end - s.start).days + 1 for s in self.segments
                   if s.daily_dose is not None and s.daily_dose >= minimum)


def medication_courses(record: PatientRecord, rules: Rules, as_of: date) -> list[Course]:
    """Every medication course of the patient, for ingredients known to the rules."""
    by_drug: dict[str, list[MedicationExposure]] = defaultdict(list)
    for e in record.exposures:
        by_drug[e.ingredient].append(e)
    fills: dict[str, list] = defaultdict(list)
    for d in record.dispenses:
        fills[d.ingredient].append(d)
    courses: list[Course] = []
    for ingredient in sorted(set(by_drug) | set(fills)):
        spans = _spans(by_drug.get(ingredient, []), rules, as_of)
        drug_fills = sorted(fills.get(ingredient, []), key=lambda d: d.handed_over)
        if not spans:
            spans = [Span(d.handed_over, min(as_of, d.handed_over + timedelta(days=d.days_supply - 1)),
                          d.daily_dose, d.ref) for d in drug_fills]
        for group in _merge(spans, int(rules.t("medication_merge_gap_days"))):
            courses.append(_course(ingredient, group, drug_fills, as_of))
    return courses


def _spans(exposures: list[MedicationExposure], rules: Rules, as_of: date) -> list[Span]:
    default_days = int(rules.t("default_order_supply_days"))
    ordered = sorted(exposures, key=lambda e: (e.start, e.ref))
    spans: list[Span] = []
    for i, e in enumerate(ordered):
        open_ended = False
        if e.end is not None:
            end = e.end
        elif e.supply_days is not None:
            end = e.start + timedelta(days=e.supply_days - 1)
        elif e.active or (e.source == "statement" and not e.stopped):
            end, open_ended = as_of, True
        else:
            end = e.start + timedelta(days=default_days - 1)
        nxt = next((o for o in ordered[i + 1:] if o.start > e.start), None)
        if (e.stopped or open_ended) and nxt is not None and nxt.start <= end:
            end = nxt.start - ONE_DAY  # cut short (or superseded) by the next order
        spans.append(Span(e.start, min(max(end, e.start), as_of), e.daily_dose, e.ref, e.stopped,
                          e.stop_reason, open_ended))
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


def _course(ingredient: str, spans: list[Span], fills: list, as_of: date) -> Course:
    start = spans[0].start
    end = max(s.end for s in spans)
    last = max(spans, key=lambda s: (s.end, s.start))
    ongoing = end >= as_of and not last.stopped
    inside = [f for f in fills if start - timedelta(days=7) <= f.handed_over <= end]
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
    refs = [s.ref for s in spans] + [f.ref for f in inside]
    pdc = proportion_of_days_covered(inside, start, end) if inside else None
    return Course(treatment=ingredient, kind="medication", start=start, end=end, ongoing=ongoing, refs=refs,
                  segments=_join(segments), pdc=pdc, stopped=last.stopped, stop_reason=last.stop_reason)


def _join(segments: list[DoseSegment]) -> list[DoseSegment]:
    """Adjacent segments with the same dose become one."""
    out: list[DoseSegment] = []
    for s in segments:
        if out and out[-1].daily_dose == s.daily_dose and (s.start - out[-1].end).days <= 1:
            out[-1] = DoseSegment(out[-1].start, max(out[-1].end, s.end), s.daily_dose)
        else:
            out.append(s)
    return out


def proportion_of_days_covered(fills: list, start: date, end: date) -> float:
    """Days covered by fills ÷ days in [start, end]; an early refill's supply is carried forward."""
    days = (end - start).days + 1
    if days <= 0:
        return 0.0
    covered = 0
    cursor = start
    for f in sorted(fills, key=lambda f: f.handed_over):
        begin = max(f.handed_over, cursor)
        stop = min(begin + timedelta(days=f.days_supply - 1), end)
        if stop >= begin and begin <= end:
            covered += (stop - max(begin, start)).days + 1 if stop >= start else 0
            cursor = stop + ONE_DAY
    return round(min(1.0, covered / days), 4)


def procedure_courses(procedures: tuple[ProcedureEvent, ...], rules: Rules, as_of: date) -> list[Course]:
    """Psychotherapy (CBT and other structured therapy) and ECT sessions grouped into courses."""
    groups = {"psychotherapy": ("psychotherapy", "cbt"), "ect": ("ect",)}
    gaps = {"psychotherapy": int(rules.t("psychotherapy_gap_days")), "ect": int(rules.t("ect_gap_days"))}
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
