"""The clinical rule tables the classifier applies, as plain values (loaded from mappings/ elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Drug:
    """One ingredient: its class, role and minimum adequate daily dose (clinical-spec §7).

    role: "antidepressant", "augmentation" (lithium, antipsychotics, liothyronine), "advanced"
    (esketamine, ketamine),
    "sad-agent" (benzodiazepines, gabapentinoids, beta-blockers), "thyroid" (replacement), "other".
    sad_line: "first", "second" or "" (not a SAD treatment); `sad_adequate` False for agents that
    never make an adequate SAD trial on their own (propranolol).
    """

    ingredient: str
    drug_class: str
    role: str
    min_daily_dose: float | None
    dose_unit: str
    sad_line: str
    sad_adequate: bool
    source: str


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float | None  # inclusive; None = no upper bound
    name: str
    msm_points: int | None


@dataclass(frozen=True, slots=True)
class Instrument:
    """A rating scale: range, remission cut-off (inclusive), response threshold, severity bands."""

    key: str
    disorder: str  # mdd | sad | any
    priority: int  # lower = preferred
    low: float
    high: float
    remission_max: float | None
    response_min_change: float | None
    bands: tuple[Band, ...]
    source: str

    def band(self, value: float) -> Band | None:
        for b in self.bands:
            if value >= b.low and (b.high is None or value <= b.high):
                return b
        return None


@dataclass(frozen=True, slots=True)
class Definition:
    """A published TRD definition: the algorithm it uses and its parameters (mappings/definitions.csv)."""

    id: str
    method: str  # switch | distinct | lines | failures | score
    params: dict[str, float | str]
    source: str

    def num(self, name: str, default: float | None = None) -> float | None:
        value = self.params.get(name, default)
        return float(value) if isinstance(value, (int, float)) else default

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the classifier needs that is a clinical fact or a policy number."""

    drugs: dict[str, Drug]
    instruments: dict[str, Instrument]
    thresholds: dict[str, float]
    stard_p_remission: tuple[float, ...]  # index = prior failed steps, last value for ≥ len-1
    symptom_targets: dict[str, tuple[str, ...]]  # symptom concept → suggested ingredients
    impairment: tuple[tuple[str, float], ...]  # (instrument, minimum) meaning functional impairment
    adjunct_max: dict[str, tuple[float, bool]] = field(default_factory=dict)  # ingredient → (max mg/day, inclusive)
    non_depressive: frozenset[str] = frozenset()  # order reasons that are not depression (clinical-spec §1 v2)
    sad_mechanisms: dict[str, str] = field(default_factory=dict)  # class → mechanism for TR-SAD (§5 v2)
    definitions: tuple[Definition, ...] = ()  # published TRD definitions, computed beside the staging

    def t(self, name: str) -> float:
        """A threshold by name; a missing one is a programming error caught by the loader's check."""
        return self.thresholds[name]

    def drug(self, ingredient: str) -> Drug | None:
        return self.drugs.get(ingredient)

    def is_adjunct_dose(self, ingredient: str, daily_dose: float | None) -> bool:
        """A daily dose in the low-dose hypnotic/analgesic range of mappings/adjunct_doses.csv."""
        limit = self.adjunct_max.get(ingredient)
        if limit is None or daily_dose is None:
            return False
        return daily_dose <= limit[0] if limit[1] else daily_dose < limit[0]
