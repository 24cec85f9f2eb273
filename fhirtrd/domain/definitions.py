"""Published TRD definitions (mappings/definitions.csv) computed from the same trials as the staging.

Five algorithms, each driven only by a row's parameters (docs/clinical-rules.md, "Published TRD
definitions", records every interpretation):
- `switch`: antidepressant units (episodes of prescription issues, or fhirtrd's trials) and the
  switches between them — a unit of one drug followed by a different drug within a gap; counted
  when the first unit lasted long enough (Fabbri, Coombes, Lo, the Danish registers).
- `distinct`: the number of distinct antidepressants taken for at least `min_days` (Coombes `num`).
- `lines`: adequate regimens (weeks at an adequate dose) followed by a new regimen (claims, Liu).
- `failures`: adequate trials with measured (or, if allowed, inferred) nonresponse (EU-PEARL, ESM).
- `score`: points per failed trial, optimisation, augmentation and ECT (MGH staging).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta

from fhirtrd.domain.model import Assessment, DefinitionResult, PatientRecord, Trial
from fhirtrd.domain.rules import Definition, Rules

METHOD_PARAMS: dict[str, frozenset[str]] = {
    "switch": frozenset({"unit", "episode_gap_days", "min_days", "single_issue_next_days", "min_gap_days",
                         "max_gap_days", "min_switches", "distinct_origins", "min_drugs", "from_class",
                         "augmentation", "anchor", "window_days"}),
    "distinct": frozenset({"min_days", "min_count"}),
    "lines": frozenset({"min_adequate_days", "max_gap_days", "window_days", "augmentation", "min_lines"}),
    "failures": frozenset({"min_days", "max_improvement", "inferred", "exclude_bipolar", "augmentation",
                           "distinct_classes", "min_failures", "stage_weeks", "chronic_weeks"}),
    "score": frozenset({"min_days", "failure_points", "optimisation_points", "augmentation_points",
                        "ect_points", "min_score"}),
}
TEXT_PARAMS = {"unit": frozenset({"issues", "trials"}), "anchor": frozenset({"first-mdd"}),
               "from_class": None, "stage_weeks": None}
LIST_PARAMS = frozenset({"stage_weeks"})  # text params that are "/"-separated numbers


@dataclass(frozen=True, slots=True)
class Unit:
    """A stretch on one antidepressant: an episode of issues or one of fhirtrd's trials."""

    drug: str
    drug_class: str
    start: date
    end: date  # the last issue (issues) or the last day (trials)
    refs: tuple[str, ...]
    days: int  # the duration the definition measures
    issues: tuple[date, ...] = ()  # every issue day (issue episodes only)


@dataclass(frozen=True, slots=True)
class Switch:
    origin: Unit
    target: Unit
    when: date


def with_definitions(record: PatientRecord, assessments: tuple[Assessment, ...], rules: Rules,
                     as_of: date) -> tuple[Assessment, ...]:
    """The assessments with `definitions` filled in (MDD only: every definition is of depression)."""
    if not rules.definitions:
        return assessments
    return tuple(replace(a, definitions=compute(record, a, rules, as_of)) if a.disorder == "mdd" else a
                 for a in assessments)


def compute(record: PatientRecord, assessment: Assessment, rules: Rules, as_of: date) -> tuple[DefinitionResult, ...]:
    """Every definition of `rules` for one MDD assessment, in table order."""
    issues: list[Unit] | None = None
    out = []
    for d in rules.definitions:
        if d.method == "switch":
            if d.text("unit") == "issues":
                if issues is None:
                    issues = issue_episodes(record, rules, d)
                out.append(_switch(d, issues, record, as_of, issue_based=True))
            else:
                out.append(_switch(d, _trial_units(assessment.trials, rules, d), record, as_of, issue_based=False))
        elif d.method == "distinct":
            out.append(_distinct(d, assessment.trials, rules))
        elif d.method == "lines":
            out.append(_lines(d, assessment.trials, rules))
        elif d.method == "failures":
            out.append(_failures(d, assessment, rules, record))
        else:
            out.append(_score(d, assessment.trials, rules, record))
    return tuple(out)


# --- units ---------------------------------------------------------------------------------------


def _is_ad(rules: Rules, ingredient: str) -> bool:
    drug = rules.drug(ingredient)
    return drug is not None and drug.role == "antidepressant"


def _class(rules: Rules, ingredient: str) -> str:
    drug = rules.drug(ingredient)
    return drug.drug_class if drug else ingredient


def issue_dates(record: PatientRecord, rules: Rules) -> dict[str, dict[date, list[str]]]:
    """Antidepressant issues per drug: orders and statements on their start day, fills on hand-over."""
    out: dict[str, dict[date, list[str]]] = defaultdict(lambda: defaultdict(list))
    for e in record.exposures:
        if _is_ad(rules, e.ingredient):
            out[e.ingredient][e.start].append(e.ref)
    for f in record.dispenses:
        if _is_ad(rules, f.ingredient):
            out[f.ingredient][f.handed_over].append(f.ref)
    return out


def issue_episodes(record: PatientRecord, rules: Rules, d: Definition) -> list[Unit]:
    """Fabbri's prescription episodes: a drug's issues while gaps are ≤ `episode_gap_days`.

    The duration is first to last issue; a single-issue episode lasts until the patient's next issue
    of any drug when that comes within `single_issue_next_days` (as the published R code does).
    """
    gap = int(d.num("episode_gap_days", 182) or 0)
    single = d.num("single_issue_next_days")
    by_drug = issue_dates(record, rules)
    every = sorted({day for days in by_drug.values() for day in days})
    units: list[Unit] = []
    for drug, days in by_drug.items():
        group: list[date] = []
        for day in sorted(days) + [None]:  # type: ignore[list-item]
            if day is not None and (not group or (day - group[-1]).days <= gap):
                group.append(day)
                continue
            if group:
                length = (group[-1] - group[0]).days
                if length == 0 and single is not None:
                    i = bisect_left(every, group[0] + timedelta(days=1))
                    if i < len(every) and (every[i] - group[0]).days <= single:
                        length = (every[i] - group[0]).days
                refs = tuple(r for g in group for r in days[g])
                units.append(Unit(drug, _class(rules, drug), group[0], group[-1], refs, length, tuple(group)))
            group = [day] if day is not None else []
    units.sort(key=lambda u: (u.start, u.drug))
    return units


def _trial_units(trials: tuple[Trial, ...], rules: Rules, d: Definition) -> list[Unit]:
    augmentation = bool(d.num("augmentation", 0))
    return sorted((Unit(t.treatment, t.treatment_class, t.start, t.end, t.evidence, (t.end - t.start).days + 1)
                   for t in trials if t.kind in ("medication", "augmentation") and (
                       _is_ad(rules, t.treatment) or augmentation and t.kind == "augmentation")),
                  key=lambda u: (u.start, u.drug))


def _anchor(record: PatientRecord, d: Definition) -> date | None:
    if d.text("anchor") != "first-mdd":
        return None
    onsets = [c.onset for c in record.conditions if "mdd" in c.concepts and c.onset is not None]
    return min(onsets) if onsets else None


# --- switch --------------------------------------------------------------------------------------


def switches(units: list[Unit], *, issue_based: bool) -> list[Switch]:
    """Each unit followed by a different drug: the next issue after its last one (issues), or the
    next trial to start after it (trials; a cross-taper or an add-on counts)."""
    out: list[Switch] = []
    if issue_based:
        timeline = sorted(((day, u) for u in units for day in u.issues), key=lambda x: (x[0], x[1].drug))
        for u in units:
            after = [(day, v) for day, v in timeline if day >= u.end and not (v is u and day == u.end)]
            if not after:
                continue
            first = after[0][0]
            others = [v for day, v in after if day == first and v.drug != u.drug]
            if others:
                out.append(Switch(u, others[0], first))
        return sorted(out, key=lambda s: (s.when, s.origin.drug))
    for u in units:
        nxt = next((v for v in units if v.start > u.start and v.drug != u.drug), None)
        if nxt is not None:
            on_first = (min(u.end, nxt.start - timedelta(days=1)) - u.start).days + 1
            out.append(Switch(replace(u, days=on_first), nxt, nxt.start))
    return sorted(out, key=lambda s: (s.when, s.origin.drug))


def _switch(d: Definition, units: list[Unit], record: PatientRecord, as_of: date, *,
            issue_based: bool) -> DefinitionResult:
    min_days = d.num("min_days", 0) or 0
    min_gap = d.num("min_gap_days")
    max_gap = d.num("max_gap_days")
    from_class = d.text("from_class")
    need = int(d.num("min_switches", 1) or 1)
    window = d.num("window_days")
    anchor = _anchor(record, d)
    if d.text("anchor") and anchor is None:
        return DefinitionResult(d.id, False, None, None)
    if len({u.drug for u in units}) < (d.num("min_drugs", 0) or 0):
        return DefinitionResult(d.id, False, None, None)
    counted: list[Switch] = []
    origins: set[str] = set()
    for s in switches(units, issue_based=issue_based):
        gap = (s.when - s.origin.end).days if issue_based else (s.when - s.origin.end).days - 1
        if s.origin.days < min_days or (min_gap is not None and gap < min_gap) or (
                max_gap is not None and gap > max_gap) or (from_class and s.origin.drug_class != from_class):
            continue
        if anchor is not None and not (anchor <= s.when <= anchor + timedelta(days=int(window or 0))):
            continue
        if d.num("distinct_origins", 0) and s.origin.drug in origins:
            continue
        origins.add(s.origin.drug)
        counted.append(s)
        if len(counted) == need:
            refs = sorted({r for c in counted for r in c.origin.refs + c.target.refs})
            return DefinitionResult(d.id, True, s.when, None, tuple(refs))
    return DefinitionResult(d.id, False, None, None)


# --- trial-based ---------------------------------------------------------------------------------


def _ad_trials(trials: tuple[Trial, ...], rules: Rules, augmentation: bool) -> list[Trial]:
    return sorted((t for t in trials if t.kind in ("medication", "augmentation") and (
        _is_ad(rules, t.treatment) or augmentation and t.kind == "augmentation")),
        key=lambda t: (t.start, t.treatment))


def _distinct(d: Definition, trials: tuple[Trial, ...], rules: Rules) -> DefinitionResult:
    min_days = int(d.num("min_days", 0) or 0)
    reached: dict[str, tuple[date, Trial]] = {}
    for t in _ad_trials(trials, rules, False):
        if (t.end - t.start).days + 1 >= min_days:
            when = t.start  # the prescription for ≥ min_days is known when the drug starts
            if t.treatment not in reached or when < reached[t.treatment][0]:
                reached[t.treatment] = (when, t)
    order = sorted(reached.values(), key=lambda x: (x[0], x[1].treatment))
    need = int(d.num("min_count", 1) or 1)
    if len(order) >= need:
        refs = sorted({r for _, t in order[:need] for r in t.evidence})
        return DefinitionResult(d.id, True, order[need - 1][0], float(len(order)), tuple(refs))
    return DefinitionResult(d.id, False, None, float(len(order)))


def _lines(d: Definition, trials: tuple[Trial, ...], rules: Rules) -> DefinitionResult:
    units = _ad_trials(trials, rules, bool(d.num("augmentation", 0)))
    min_days = d.num("min_adequate_days", 0) or 0
    max_gap = d.num("max_gap_days")
    window = d.num("window_days")
    need = int(d.num("min_lines", 1) or 1)
    failed: list[tuple[Trial, Trial]] = []
    seen: set[str] = set()
    for t in units:
        if t.weeks_adequate * 7 < min_days or t.treatment in seen:
            continue
        nxt = next((v for v in units if v.start > t.start and v.treatment != t.treatment), None)
        if nxt is None or (max_gap is not None and (nxt.start - t.end).days - 1 > max_gap):
            continue
        seen.add(t.treatment)
        failed.append((t, nxt))
    failed.sort(key=lambda x: (x[1].start, x[0].treatment))
    if len(failed) >= need:
        when = failed[need - 1][1].start
        if window is None or (when - units[0].start).days <= window:
            refs = sorted({r for a, b in failed[:need] for r in a.evidence + b.evidence})
            return DefinitionResult(d.id, True, when, None, tuple(refs))
    return DefinitionResult(d.id, False, None, None)


def known(t: Trial, record: PatientRecord) -> date:
    """The day a trial's outcome is known: its latest score (the endpoint), else its last day."""
    refs = set(t.evidence)
    days = [m.when for m in record.measurements if m.ref in refs and m.when >= t.start]
    return max(days) if days else t.end


def _failures(d: Definition, a: Assessment, rules: Rules, record: PatientRecord) -> DefinitionResult:
    if d.num("exclude_bipolar", 0) and "misdiagnosis-bipolar" in a.pseudo_resistance:
        return DefinitionResult(d.id, False, None, None if d.text("stage_weeks") is None else 0.0)
    min_days = d.num("min_days", 0) or 0
    limit = d.num("max_improvement", 0.0) or 0.0
    inferred = bool(d.num("inferred", 0))
    failed = [t for t in _ad_trials(a.trials, rules, bool(d.num("augmentation", 0)))
              if t.weeks_adequate * 7 >= min_days and (
                  (t.change is not None and t.change < limit) or (inferred and t.failure_inferred))]
    failed.sort(key=lambda t: (known(t, record), t.treatment))
    distinct = bool(d.num("distinct_classes", 0))
    keys: list[str] = []
    counted: list[Trial] = []
    for t in failed:
        key = t.treatment_class if distinct else t.treatment
        if key not in keys:
            keys.append(key)
            counted.append(t)
    need = int(d.num("min_failures", 1) or 1)
    value = None if d.text("stage_weeks") is None else 0.0
    if value is not None and len(counted) >= need:
        value = resistance_stage(d, failed)
    if len(counted) >= need:
        refs = sorted({r for t in counted for r in t.evidence})
        return DefinitionResult(d.id, True, known(counted[need - 1], record), value, tuple(refs))
    return DefinitionResult(d.id, False, None, value)


def resistance_stage(d: Definition, failed: list[Trial]) -> float:
    """ESM stage by the duration of resistance: the weeks of all failed adequate trials, added up.

    `stage_weeks` holds the lower bound of each stage ("12/18/24/30/36": TRD1 12–16 weeks … TRD5
    36 weeks–1 year, Souery 1999); the highest stage reached is the value, at least 1 once the
    definition is met. `chronic_weeks` (52) and more is chronic resistant depression, value
    len(bounds) + 1, when an augmentation trial is among the failures (Souery 1999: CRD includes
    augmentation).
    """
    bounds = [float(w) for w in (d.text("stage_weeks") or "").split("/") if w]
    weeks = sum((t.end - t.start).days + 1 for t in failed) / 7
    stage = max([1] + [i + 1 for i, low in enumerate(bounds) if weeks >= low])
    chronic = d.num("chronic_weeks")
    if chronic is not None and weeks >= chronic and any(t.kind == "augmentation" for t in failed):
        return float(len(bounds) + 1)
    return float(stage)


def _score(d: Definition, trials: tuple[Trial, ...], rules: Rules, record: PatientRecord) -> DefinitionResult:
    min_days = d.num("min_days", 0) or 0
    events: list[tuple[date, float, Trial]] = []
    for t in sorted(trials, key=lambda t: (t.start, t.treatment)):
        if t.kind == "ect":
            events.append((t.start, d.num("ect_points", 0) or 0, t))
        elif t.kind == "augmentation":
            events.append((t.start, d.num("augmentation_points", 0) or 0, t))
        elif t.kind == "medication" and _is_ad(rules, t.treatment):
            if t.failed and t.weeks_adequate * 7 >= min_days:
                events.append((known(t, record), d.num("failure_points", 0) or 0, t))
            raised = _dose_raised(t)
            if raised is not None:
                events.append((raised, d.num("optimisation_points", 0) or 0, t))
    events.sort(key=lambda e: (e[0], e[2].treatment))
    total, when = 0.0, None
    threshold = d.num("min_score", 0) or 0
    for day, points, _ in events:
        total += points
        if when is None and points and total >= threshold:
            when = day
    refs = sorted({r for _, p, t in events if p for r in t.evidence})
    met = when is not None
    return DefinitionResult(d.id, met, when, total, tuple(refs) if met else ())


def _dose_raised(t: Trial) -> date | None:
    """The first day the dose went up within the trial (optimisation), or None."""
    best: float | None = None
    for s in t.segments:
        if s.daily_dose is None:
            continue
        if best is not None and s.daily_dose > best:
            return s.start
        best = s.daily_dose if best is None else max(best, s.daily_dose)
    return None
