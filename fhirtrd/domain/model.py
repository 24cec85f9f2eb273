"""The clinical facts the classifier reads and the assessment it returns, as frozen values.

The inbound FHIR adapter turns resources into these facts; nothing here knows about FHIR JSON.
Every fact keeps `ref`, the reference of the resource it came from ("MedicationRequest/123"),
so that each conclusion can name its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

# --- facts (input) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MedicationExposure:
    """A span in which the patient was meant to take one ingredient (statement, order, administration).

    `source` is "statement", "request" or "administration". `end` is None when open-ended.
    `daily_dose` is in the ingredient's dose unit (mg/day) or None when it cannot be computed.
    `stop_reason` is a concept from mappings ("adverse-effect", …) or None. `supply_days` is the
    supply an order covers (expected supply × (1 + repeats)); None for other sources.
    `reasons` are the concepts of the order's or statement's reasonCode/reasonReference (disorders
    such as "mdd"/"sad" and non-depressive indications such as "neuropathic-pain"; clinical-spec §1).
    `bedtime` is a dose taken at bedtime (timing.code HS, `when` HS); `prn` is `asNeeded` (§2 adjuncts).
    `end_assumed` is True when the adapter found no supply and no end (an open active order; §2).
    """

    ingredient: str
    source: str
    start: date
    end: date | None
    daily_dose: float | None
    ref: str
    active: bool = False
    stopped: bool = False
    stop_reason: str | None = None
    supply_days: int | None = None
    reasons: frozenset[str] = frozenset()
    bedtime: bool = False
    prn: bool = False
    end_assumed: bool = False


@dataclass(frozen=True, slots=True)
class Dispense:
    """A fill handed to the patient: `days_supply` days starting `handed_over`."""

    ingredient: str
    handed_over: date
    days_supply: int
    daily_dose: float | None
    ref: str


@dataclass(frozen=True, slots=True)
class ProcedureEvent:
    """One session of a non-drug treatment, or a treatment device in use.

    `concept` is "psychotherapy", "cbt", "ect", "rtms", "cpap" (from Procedure, Encounter,
    DeviceRequest, DeviceUseStatement or Device). `reasons` are the disorder concepts named by
    reasonCode/reasonReference/diagnosis ("mdd", "sad"); empty when none is given (clinical-spec §2.1).
    """

    concept: str
    when: date
    ref: str
    laterality: str | None = None  # "bilateral" | "unilateral" | None
    reasons: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ConditionFact:
    """A diagnosis. `concepts` come from the condition code tables (a code may carry several)."""

    concepts: frozenset[str]
    onset: date | None
    abatement: date | None
    active: bool
    ref: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class Measurement:
    """A score (instrument total or item) or a lab result, already in the mapped unit.

    `instant` is the full effective timestamp (timezone-aware, UTC) when one was given and `issued`
    the time the result was issued; scores are ordered by (when, instant, issued) (clinical-spec §3 v2).
    """

    concept: str
    value: float
    when: date
    ref: str
    instant: datetime | None = None
    issued: datetime | None = None


@dataclass(frozen=True, slots=True)
class IntoleranceFact:
    """An AllergyIntolerance of type intolerance, or an AdverseEvent, that names an ingredient."""

    ingredient: str
    when: date | None
    ref: str


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Everything known about one patient that the classifier can use."""

    patient: str
    exposures: tuple[MedicationExposure, ...] = ()
    dispenses: tuple[Dispense, ...] = ()
    procedures: tuple[ProcedureEvent, ...] = ()
    conditions: tuple[ConditionFact, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    intolerances: tuple[IntoleranceFact, ...] = ()


# --- results (output) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """A pseudo-resistance finding (or another coded observation) with the resources behind it."""

    code: str
    evidence: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DoseSegment:
    start: date
    end: date
    daily_dose: float | None


@dataclass(frozen=True, slots=True)
class Trial:
    """One continuous course of one treatment, judged for one disorder."""

    treatment: str
    kind: str  # medication | psychotherapy | ect | augmentation
    treatment_class: str
    start: date
    end: date
    ongoing: bool
    adequate: bool
    findings: tuple[str, ...]
    adherence: str  # ok | poor | unknown (| not-applicable for non-drug treatments)
    pdc: float | None
    outcome: str  # remission | response | partial-response | nonresponse | unknown
    change: float | None
    instrument: str | None
    evidence: tuple[str, ...]
    failed: bool
    failure_inferred: bool
    episode: str  # current | previous
    daily_dose: float | None  # the highest daily dose reached
    min_adequate_dose: float | None
    weeks_adequate: float
    sessions: int | None
    laterality: str | None
    segments: tuple[DoseSegment, ...] = ()
    caveats: tuple[str, ...] = ()
    baseline: float | None = None
    endpoint: float | None = None


@dataclass(frozen=True, slots=True)
class NextStep:
    strategy: str
    also: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Msm:
    total: int | None
    band: str | None
    reason: str | None
    duration: int | None = None
    severity: int | None = None
    failures: int | None = None
    augmentation: int | None = None
    ect: int | None = None


@dataclass(frozen=True, slots=True)
class Likelihood:
    p_remission: float
    p_burden: float
    expected_utility: float
    prior_failed_steps: int
    source: str


@dataclass(frozen=True, slots=True)
class DefinitionResult:
    """One published TRD definition computed for one patient (mappings/definitions.csv).

    `value` is the definition's number when it has one (an MGH-S score, a count of distinct
    antidepressants, an ESM stage), else None; `evidence` the resources of the trials or issues that
    satisfied it (empty when not met).
    """

    id: str
    met: bool
    date_met: date | None
    value: float | None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Assessment:
    """The classifier's verdict for one disorder of one patient (clinical-spec §9)."""

    disorder: str  # mdd | sad
    diagnosis: str  # recorded | inferred
    stage: str
    status: str  # confirmed | provisional | not-applicable
    treatment_resistant: bool
    failed_adequate_trials: int
    failed_classes: tuple[str, ...]
    pseudo_resistance: tuple[str, ...]
    findings: tuple[Finding, ...]
    caveats: tuple[str, ...]
    next_step: NextStep
    inflammation: str
    inflammation_evidence: tuple[str, ...]
    subtypes: tuple[str, ...]
    msm: Msm | None
    next_step_likelihood: Likelihood
    advisories: tuple[str, ...]
    trials: tuple[Trial, ...]
    diagnosis_evidence: tuple[str, ...] = ()
    score_evidence: tuple[str, ...] = ()
    episode_start: date | None = None
    definitions: tuple[DefinitionResult, ...] = ()

    @property
    def evidence(self) -> tuple[str, ...]:
        """Every input reference the assessment used, sorted and distinct."""
        refs: set[str] = set(self.diagnosis_evidence) | set(self.score_evidence)
        refs.update(self.inflammation_evidence)
        for t in self.trials:
            refs.update(t.evidence)
        for f in self.findings:
            refs.update(f.evidence)
        return tuple(sorted(refs))


@dataclass(frozen=True, slots=True)
class DataWarning:
    """A data-quality warning: what was wrong, where (resource type/id, element), and what was done."""

    message: str
    resource: str | None = None
    element: str | None = None
    source: str | None = None  # file:line or bundle entry index
    code: str = "invalid"


@dataclass(frozen=True, slots=True)
class PatientResult:
    patient: str
    as_of: date
    assessments: tuple[Assessment, ...]
    warnings: tuple[DataWarning, ...] = field(default_factory=tuple)
