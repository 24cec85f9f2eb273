"""Loads mappings/ (code tables, dose table, thresholds) into lookups, validated at load.

Each table is a CSV (or YAML for thresholds) with a `source` column. A hospital adds or overrides
rows with `--mappings DIR`: a file of the same name there is read after the packaged one, and its
rows replace packaged rows with the same key (system + code, ingredient, instrument, name) or add
new ones. Any bad row — a duplicate key inside one file, an unknown concept, a number out of range,
a missing column — raises one `TerminologyError` naming the file and the row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fhirtrd.domain.definitions import LIST_PARAMS, METHOD_PARAMS, TEXT_PARAMS
from fhirtrd.domain.rules import Band, Definition, Drug, Instrument, Rules
from fhirtrd.errors import TerminologyError

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"

CONDITION_CONCEPTS = frozenset({
    "mdd", "sad", "bipolar", "dysthymia", "substance-use", "osa", "hypothyroidism", "insomnia",
    "fatigue", "sexual-dysfunction", "anxiety", "severity-mild", "severity-moderate",
    "severity-severe", "psychotic-features", "in-remission", "substance-use-remission",
})
LAB_CONCEPTS = frozenset({"crp", "hscrp", "tsh", "free-t4", "sodium", "lithium", "ahi", "adherence"})
INDICATION_CONCEPTS = frozenset({"neuropathic-pain", "fibromyalgia", "migraine", "insomnia", "smoking-cessation",
                                 "enuresis", "hot-flushes"})
PROCEDURE_CONCEPTS = frozenset({"cbt", "psychotherapy", "ect", "rtms", "cpap"})
ROLES = frozenset({"antidepressant", "augmentation", "advanced", "sad-agent", "thyroid", "other"})
STOP_CONCEPTS = frozenset({"adverse-effect"})
LATERALITIES = frozenset({"bilateral", "unilateral"})
DISORDERS = frozenset({"mdd", "sad", "any"})


@dataclass(frozen=True, slots=True)
class Product:
    """A coded medication product: the ingredient it contains and its strength per unit, if known."""

    ingredient: str
    strength: float | None
    unit: str


@dataclass(frozen=True, slots=True)
class ObservationCode:
    concept: str
    unit: str


@dataclass(frozen=True)
class Panel:
    """A questionnaire panel Observation (PHQ-9 44249-1): its instrument and its scored item codes (max score each)."""

    instrument: str
    items: dict[tuple[str, str], float]


@dataclass(frozen=True)
class Terminology:
    """All lookups of the inbound adapter plus the classifier's `rules`."""

    rules: Rules
    products: dict[tuple[str, str], Product]
    observations: dict[tuple[str, str], ObservationCode]
    conditions_exact: dict[tuple[str, str], frozenset[str]]
    conditions_prefix: tuple[tuple[str, str, frozenset[str]], ...]
    procedures: dict[tuple[str, str], str]
    laterality: dict[tuple[str, str], str]
    stop_reasons: dict[tuple[str, str], str]
    stop_words: tuple[tuple[str, str], ...]
    units: dict[str, tuple[str, float]]
    dose_units: dict[str, tuple[str, float]]
    timing_codes: dict[tuple[str, str], float]
    answer_scores: dict[tuple[str, str], float]
    name_pattern: re.Pattern[str]
    indications_exact: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    indications_prefix: tuple[tuple[str, str, frozenset[str]], ...] = ()
    brands: dict[str, str] = field(default_factory=dict)  # brand name (lower case) → ingredient
    questionnaires: dict[str, tuple[str, int]] = field(default_factory=dict)  # canonical → (instrument, items)
    devices: dict[tuple[str, str], str] = field(default_factory=dict)  # device type code → procedure concept (cpap)
    panels: dict[tuple[str, str], Panel] = field(default_factory=dict)  # panel Observation code → its scored items
    _named: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)  # ingredient_in_text's answers

    def indication_concepts(self, system: str, code: str) -> frozenset[str]:
        """Non-depressive indications (neuropathic pain, migraine, insomnia…) of a diagnosis code."""
        hit = self.indications_exact.get((system, code))
        if hit is not None:
            return hit
        for sys_, prefix, concepts in self.indications_prefix:
            if sys_ == system and code.startswith(prefix):
                return concepts
        return frozenset()

    def reason_concepts(self, system: str, code: str) -> frozenset[str]:
        """What a reasonCode names: disorders of the conditions table and indications."""
        return self.condition_concepts(system, code) | self.indication_concepts(system, code)

    def condition_concepts(self, system: str, code: str) -> frozenset[str]:
        hit = self.conditions_exact.get((system, code))
        if hit is not None:
            return hit
        for sys_, prefix, concepts in self.conditions_prefix:
            if sys_ == system and code.startswith(prefix):
                return concepts
        return frozenset()

    def ingredient_in_text(self, text: str) -> str | None:
        """The one known ingredient named in free text ("Sertraline 100MG"), or None (0 or ≥ 2)."""
        if text in self._named:  # the same few drug names recur across a population
            return self._named[text]
        found = {self.brands.get(m.group(1).lower(), m.group(1).lower()) for m in self.name_pattern.finditer(text)}
        answer = found.pop() if len(found) == 1 else None
        if len(self._named) < 100_000:
            self._named[text] = answer
        return answer

    def stop_reason_in_text(self, text: str) -> str | None:
        low = text.lower()
        for phrase, concept in self.stop_words:
            if phrase in low:
                return concept
        return None

    def convert(self, value: float, unit: str | None, wanted: str) -> float | None:
        """`value` in `wanted` units, or None when `unit` is unknown or converts to something else."""
        if not unit:
            return value if wanted == "{score}" else None
        hit = self.units.get(unit)
        if hit is None or hit[0] != wanted:
            return None
        return value * hit[1]


# --- loading -----------------------------------------------------------------------------------


def _packaged_dir() -> Path:
    return Path(str(resources.files("fhirtrd.mappings")))


def _rows(dirs: Sequence[Path], name: str, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of `name` from each directory that has it, as (where, row); checks the columns."""
    for d in dirs:
        path = d / name
        if not path.exists():
            continue
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise TerminologyError(f"{path}: missing column(s) {', '.join(missing)}", path=str(path))
            for i, row in enumerate(reader, start=2):
                where = f"{path}:{i}"
                if not (row.get("source") or "").strip():
                    raise TerminologyError(f"{where}: every row needs a source", path=str(path), row=i)
                yield where, {k: (v or "").strip() for k, v in row.items() if k is not None}


def _keyed(dirs: Sequence[Path], name: str, columns: Sequence[str],
           key: Callable[[dict[str, str]], Any]) -> dict[Any, tuple[str, dict[str, str]]]:
    """Rows by key; a duplicate key inside one file is an error, a later directory overrides."""
    out: dict[Any, tuple[str, dict[str, str]]] = {}
    for where, row in _rows(dirs, name, columns):
        k = key(row)
        prev = out.get(k)
        if prev is not None and prev[0].rsplit(":", 1)[0] == where.rsplit(":", 1)[0]:
            raise TerminologyError(f"{where}: duplicate key {k!r} (first at {prev[0]})", path=where)
        out[k] = (where, row)
    return out


def _num(where: str, row: dict[str, str], col: str, *, low: float | None = None,
         high: float | None = None, optional: bool = False) -> float | None:
    raw = row.get(col, "")
    if raw == "":
        if optional:
            return None
        raise TerminologyError(f"{where}: {col} is required", path=where)
    try:
        value = float(raw)
    except ValueError:
        raise TerminologyError(f"{where}: {col}={raw!r} is not a number", path=where) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise TerminologyError(f"{where}: {col}={raw} is out of range [{low}, {high}]", path=where)
    return value


def _concept(where: str, value: str, allowed: frozenset[str], what: str) -> str:
    if value not in allowed:
        raise TerminologyError(f"{where}: unknown {what} {value!r} (known: {', '.join(sorted(allowed))})",
                               path=where)
    return value


def load_terminology(extra_dirs: Sequence[Path | str] = ()) -> Terminology:
    """Load the packaged mappings, then each of `extra_dirs` over them."""
    dirs = [_packaged_dir(), *(Path(d) for d in extra_dirs)]
    for d in dirs[1:]:
        if not d.is_dir():
            raise TerminologyError(f"{d}: mappings directory not found", path=str(d))

    drugs: dict[str, Drug] = {}
    rx_ingredient: dict[tuple[str, str], Product] = {}
    for k, (where, r) in _keyed(dirs, "medications.csv",
                                ["ingredient", "rxnorm", "class", "role", "min_daily_dose", "dose_unit",
                                 "sad_line", "sad_adequate", "source"], lambda r: r["ingredient"]).items():
        role = _concept(where, r["role"], ROLES, "role")
        if r["sad_line"] not in ("first", "second", ""):
            raise TerminologyError(f"{where}: sad_line must be first, second or empty", path=where)
        drugs[k] = Drug(ingredient=k, drug_class=r["class"], role=role,
                        min_daily_dose=_num(where, r, "min_daily_dose", low=0.0001, optional=True),
                        dose_unit=r["dose_unit"] or "mg", sad_line=r["sad_line"],
                        sad_adequate=r["sad_adequate"].lower() == "true", source=r["source"])
        if r["rxnorm"]:
            rx_ingredient[(RXNORM, r["rxnorm"])] = Product(k, None, r["dose_unit"] or "mg")

    products: dict[tuple[str, str], Product] = dict(rx_ingredient)
    for (system, code), (where, r) in _keyed(
            dirs, "medication_products.csv",
            ["system", "code", "ingredient", "strength", "unit", "source"],
            lambda r: (r["system"], r["code"])).items():
        _concept(where, r["ingredient"], frozenset(drugs), "ingredient")
        if (system, code) in rx_ingredient:
            raise TerminologyError(f"{where}: {code} is an ingredient code in medications.csv", path=where)
        products[(system, code)] = Product(r["ingredient"], _num(where, r, "strength", low=0.0001, optional=True),
                                           r["unit"] or "mg")
    for code, (where, r) in _keyed(dirs, "atc.csv", ["code", "ingredient", "source"],
                                   lambda r: r["code"]).items():
        _concept(where, r["ingredient"], frozenset(drugs), "ingredient")
        products[(ATC, code)] = Product(r["ingredient"], None, "mg")

    instruments: dict[str, Instrument] = {}
    raw_instruments = _keyed(dirs, "instruments.csv",
                             ["instrument", "disorder", "priority", "low", "high", "remission_max",
                              "response_min_change", "source"], lambda r: r["instrument"])
    bands: dict[str, list[Band]] = {}
    for where, r in _rows(dirs, "instrument_bands.csv", ["instrument", "low", "high", "band", "msm_points", "source"]):
        if r["instrument"] not in raw_instruments:
            raise TerminologyError(f"{where}: unknown instrument {r['instrument']!r}", path=where)
        pts = _num(where, r, "msm_points", low=1, high=5, optional=True)
        bands.setdefault(r["instrument"], []).append(Band(
            low=_num(where, r, "low") or 0.0, high=_num(where, r, "high", optional=True), name=r["band"],
            msm_points=int(pts) if pts is not None else None))
    for k, (where, r) in raw_instruments.items():
        low = _num(where, r, "low") or 0.0
        high = _num(where, r, "high", low=low) or 0.0
        instruments[k] = Instrument(
            key=k, disorder=_concept(where, r["disorder"], DISORDERS, "disorder"),
            priority=int(_num(where, r, "priority", low=0) or 0), low=low, high=high,
            remission_max=_num(where, r, "remission_max", low=low, high=high, optional=True),
            response_min_change=_num(where, r, "response_min_change", low=0.01, high=1, optional=True),
            bands=tuple(sorted(bands.get(k, []), key=lambda b: b.low)), source=r["source"])

    obs_concepts = frozenset(instruments) | LAB_CONCEPTS
    observations = {
        k: ObservationCode(_concept(where, r["concept"], obs_concepts, "observation concept"), r["unit"])
        for k, (where, r) in _keyed(dirs, "observation_codes.csv", ["system", "code", "concept", "unit", "source"],
                                    lambda r: (r["system"], r["code"])).items()}

    conditions_exact: dict[tuple[str, str], frozenset[str]] = {}
    prefixes: list[tuple[str, str, frozenset[str]]] = []
    for (system, code, match), (where, r) in _keyed(
            dirs, "conditions.csv", ["system", "code", "match", "concepts", "source"],
            lambda r: (r["system"], r["code"], r["match"])).items():
        concepts = frozenset(_concept(where, c, CONDITION_CONCEPTS, "condition concept") for c in r["concepts"].split())
        if match == "exact":
            conditions_exact[(system, code)] = concepts
        elif match == "prefix":
            prefixes.append((system, code, concepts))
        else:
            raise TerminologyError(f"{where}: match must be exact or prefix", path=where)
    prefixes.sort(key=lambda p: -len(p[1]))  # the most specific prefix wins

    indications_exact: dict[tuple[str, str], frozenset[str]] = {}
    indication_prefixes: list[tuple[str, str, frozenset[str]]] = []
    for (system, code, match), (where, r) in _keyed(
            dirs, "indications.csv", ["system", "code", "match", "concept", "source"],
            lambda r: (r["system"], r["code"], r["match"])).items():
        concept = frozenset({_concept(where, r["concept"], INDICATION_CONCEPTS, "indication")})
        if match == "exact":
            indications_exact[(system, code)] = concept
        elif match == "prefix":
            indication_prefixes.append((system, code, concept))
        else:
            raise TerminologyError(f"{where}: match must be exact or prefix", path=where)
    indication_prefixes.sort(key=lambda p: -len(p[1]))

    procedures = {k: _concept(where, r["concept"], PROCEDURE_CONCEPTS, "procedure concept")
                  for k, (where, r) in _keyed(dirs, "procedures.csv", ["system", "code", "concept", "source"],
                                              lambda r: (r["system"], r["code"])).items()}
    panels: dict[tuple[str, str], Panel] = {}
    for (system, code, item), (where, r) in _keyed(
            dirs, "panels.csv", ["panel_system", "panel_code", "instrument", "item_code", "item_max", "source"],
            lambda r: (r["panel_system"], r["panel_code"], r["item_code"])).items():
        panel = panels.setdefault((system, code), Panel(_concept(where, r["instrument"], frozenset(instruments),
                                                                  "panel instrument"), {}))
        if panel.instrument != r["instrument"]:
            raise TerminologyError(f"{where}: panel {code} is already {panel.instrument}", path=where)
        panel.items[(system, item)] = _num(where, r, "item_max", low=0) or 0.0
    devices = {k: _concept(where, r["concept"], PROCEDURE_CONCEPTS, "device concept")
               for k, (where, r) in _keyed(dirs, "devices.csv", ["system", "code", "concept", "source"],
                                           lambda r: (r["system"], r["code"])).items()}
    laterality = {k: _concept(where, r["laterality"], LATERALITIES, "laterality")
                  for k, (where, r) in _keyed(dirs, "laterality.csv", ["system", "code", "laterality", "source"],
                                              lambda r: (r["system"], r["code"])).items()}
    stop_reasons = {k: _concept(where, r["concept"], STOP_CONCEPTS, "stop reason")
                    for k, (where, r) in _keyed(dirs, "stop_reasons.csv", ["system", "code", "concept", "source"],
                                                lambda r: (r["system"], r["code"])).items()}
    stop_words = tuple((k.lower(), _concept(where, r["concept"], STOP_CONCEPTS, "stop reason"))
                       for k, (where, r) in _keyed(dirs, "stop_reason_words.csv", ["phrase", "concept", "source"],
                                                   lambda r: r["phrase"]).items())
    units = {k: (r["to_unit"], _num(where, r, "factor", low=0) or 0.0)
             for k, (where, r) in _keyed(dirs, "unit_conversions.csv", ["unit", "to_unit", "factor", "source"],
                                         lambda r: r["unit"]).items()}

    dose_units = {k: (r["kind"], _num(where, r, "factor", low=0) or 0.0)
                  for k, (where, r) in _keyed(dirs, "dose_units.csv", ["unit", "kind", "factor", "source"],
                                              lambda r: r["unit"]).items()}
    for unit, (kind, _) in dose_units.items():
        if kind not in ("mass", "unit", "volume"):
            raise TerminologyError(f"dose_units.csv: {unit}: kind must be mass, unit or volume", path="dose_units.csv")
    timing_codes = {k: _num(where, r, "per_day", low=0.001) or 0.0
                    for k, (where, r) in _keyed(dirs, "timing_codes.csv", ["system", "code", "per_day", "source"],
                                                lambda r: (r["system"], r["code"])).items()}

    answer_scores = {k: _num(where, r, "value", low=0) or 0.0
                     for k, (where, r) in _keyed(dirs, "answer_scores.csv", ["system", "code", "value", "source"],
                                                 lambda r: (r["system"], r["code"])).items()}

    thresholds = _thresholds(dirs)
    stard = sorted(((int(_num(where, r, "prior_failed_steps", low=0) or 0), _num(where, r, "p_remission", low=0, high=1) or 0.0)
                    for where, r in _rows(dirs, "stard.csv", ["prior_failed_steps", "p_remission", "source"])))
    if [s for s, _ in stard] != list(range(len(stard))) or not stard:
        raise TerminologyError("stard.csv: prior_failed_steps must run 0, 1, 2, … without gaps", path="stard.csv")
    targets: dict[str, list[str]] = {}
    for where, r in _rows(dirs, "symptom_targets.csv", ["symptom", "ingredient", "source"]):
        _concept(where, r["ingredient"], frozenset(drugs), "ingredient")
        _concept(where, r["symptom"], CONDITION_CONCEPTS, "symptom")
        if r["ingredient"] not in targets.setdefault(r["symptom"], []):
            targets[r["symptom"]].append(r["ingredient"])
    impairment = tuple((_concept(where, r["instrument"], frozenset(instruments), "instrument"),
                        _num(where, r, "minimum") or 0.0)
                       for where, r in _rows(dirs, "impairment.csv", ["instrument", "minimum", "source"]))

    adjunct_max = {k: (_num(where, r, "max_daily_dose", low=0.0001) or 0.0, r["inclusive"].lower() == "true")
                   for k, (where, r) in _keyed(dirs, "adjunct_doses.csv",
                                               ["ingredient", "max_daily_dose", "inclusive", "source"],
                                               lambda r: r["ingredient"]).items()
                   if _concept(where, r["ingredient"], frozenset(drugs), "ingredient")}
    sad_mechanisms = {k: r["mechanism"] for k, (where, r) in _keyed(
        dirs, "sad_mechanisms.csv", ["class", "mechanism", "source"], lambda r: r["class"]).items()}

    brands: dict[str, str] = {}
    for brand, (where, r) in _keyed(dirs, "brands.csv", ["brand", "ingredient", "source"],
                                    lambda r: r["brand"].lower()).items():
        brands[brand] = _concept(where, r["ingredient"], frozenset(drugs), "ingredient")
    questionnaires = {url: (_concept(where, r["instrument"], frozenset(instruments), "instrument"),
                            int(_num(where, r, "items", low=1) or 1))
                      for url, (where, r) in _keyed(dirs, "questionnaires.csv", ["url", "instrument", "items", "source"],
                                                    lambda r: r["url"]).items()}
    names = sorted(set(drugs) | set(brands), key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")", re.IGNORECASE)
    rules = Rules(drugs=drugs, instruments=instruments, thresholds=thresholds,
                  stard_p_remission=tuple(p for _, p in stard),
                  symptom_targets={k: tuple(v) for k, v in targets.items()}, impairment=impairment,
                  adjunct_max=adjunct_max, non_depressive=INDICATION_CONCEPTS, sad_mechanisms=sad_mechanisms,
                  definitions=_definitions(dirs))
    return Terminology(rules=rules, products=products, observations=observations,
                       conditions_exact=conditions_exact, conditions_prefix=tuple(prefixes),
                       procedures=procedures, laterality=laterality, stop_reasons=stop_reasons,
                       stop_words=stop_words, units=units, dose_units=dose_units,
                       timing_codes=timing_codes, answer_scores=answer_scores, name_pattern=pattern,
                       indications_exact=indications_exact, indications_prefix=tuple(indication_prefixes),
                       brands=brands, questionnaires=questionnaires, devices=devices,
                       panels=panels)


REQUIRED_THRESHOLDS = (
    "medication_merge_gap_days", "default_order_supply_days", "psychotherapy_gap_days", "ect_gap_days",
    "adequate_weeks", "adherence_min_pdc", "psychotherapy_min_sessions", "ect_min_sessions",
    "augmentation_min_overlap_days", "lithium_level_min", "lithium_level_weeks", "hyponatraemia_below",
    "hyponatraemia_stop_within_days", "baseline_before_days", "baseline_after_days",
    "endpoint_after_start_days", "endpoint_after_end_days", "partial_response_min_change",
    "remission_episode_end_days", "lab_lookback_days", "tsh_max", "ahi_min", "crp_elevated_above",
    "crp_indeterminate_above", "gad7_anxious_min", "phq9_item_positive_min",
    "msm_duration_moderate_months", "msm_duration_severe_months", "msm_band_mild_max",
    "msm_band_moderate_max", "msm_psychotic_severity", "msm_coded_severity_mild",
    "msm_coded_severity_moderate", "msm_coded_severity_severe", "p_burden", "utility_remission", "utility_burden",
    "tr_mdd_min_failures", "tr_sad_min_distinct", "absurd_dose_factor",
    "stale_order_cap_days", "refill_gap_days", "switch_fill_stop_days", "cross_taper_max_overlap_days",
    "esketamine_min_sessions", "ketamine_min_sessions", "rtms_min_sessions", "advanced_in_progress_days",
    "inferred_failure_next_within_days", "inferred_failure_max_weeks", "episode_treatment_gap_days",
)


def _thresholds(dirs: Sequence[Path]) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in dirs:
        path = d / "thresholds.yaml"
        if not path.exists():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TerminologyError(f"{path}: not valid YAML: {exc}", path=str(path)) from exc
        if not isinstance(data, dict):
            raise TerminologyError(f"{path}: expected a mapping of name → {{value, source}}", path=str(path))
        for name, entry in data.items():
            where = f"{path}: {name}"
            if not isinstance(entry, dict) or "value" not in entry or not entry.get("source"):
                raise TerminologyError(f"{where}: needs value and source", path=str(path))
            if name not in REQUIRED_THRESHOLDS:
                raise TerminologyError(f"{where}: unknown threshold", path=str(path))
            value = entry["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise TerminologyError(f"{where}: value must be a non-negative number", path=str(path))
            out[name] = float(value)
    missing = [n for n in REQUIRED_THRESHOLDS if n not in out]
    if missing:
        raise TerminologyError(f"thresholds.yaml: missing {', '.join(missing)}", path="thresholds.yaml")
    return out


def _definitions(dirs: Sequence[Path]) -> tuple[Definition, ...]:
    """mappings/definitions.csv: one published TRD definition a row, `params` as `name=value;…`."""
    out: list[Definition] = []
    for where, r in _keyed(dirs, "definitions.csv", ["id", "method", "params", "source"],
                           lambda r: r["id"]).values():
        method = _concept(where, r["method"], frozenset(METHOD_PARAMS), "method")
        params: dict[str, float | str] = {}
        for item in filter(None, (p.strip() for p in r["params"].split(";"))):
            name, sep, raw = item.partition("=")
            name, raw = name.strip(), raw.strip()
            if not sep or name not in METHOD_PARAMS[method]:
                raise TerminologyError(f"{where}: params: {item!r} is not a parameter of {method} "
                                       f"(known: {', '.join(sorted(METHOD_PARAMS[method]))})", path=where)
            if name in TEXT_PARAMS:
                allowed = TEXT_PARAMS[name]
                params[name] = raw if allowed is None else _concept(where, raw, allowed, name)
                if name in LIST_PARAMS:
                    for part in raw.split("/"):
                        _num(where, {name: part}, name, low=0)
            else:
                params[name] = _num(where, {name: raw}, name, low=0) or 0.0
        out.append(Definition(r["id"], method, params, r["source"]))
    return tuple(out)
