"""Shared pieces of the inbound adapter: dates, references, element helpers, the per-patient builder."""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from pydantic import ValidationError

from fhirtrd.fhir import elements
from fhirtrd.fhir.quickcheck import QuickCheck
from fhirtrd.domain.model import (
    ConditionFact,
    DataWarning,
    Dispense,
    IntoleranceFact,
    Measurement,
    MedicationExposure,
    PatientRecord,
    ProcedureEvent,
)
from fhirtrd.terminology import Terminology

MED_TYPES = frozenset({"MedicationStatement", "MedicationRequest", "MedicationDispense", "MedicationAdministration"})
RELEVANT = MED_TYPES | {"Patient", "Condition", "Observation", "Procedure", "AllergyIntolerance",
                        "AdverseEvent", "Medication", "Encounter", "QuestionnaireResponse", "Device",
                        "DeviceRequest", "DeviceUseStatement"}
PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
DURATION_DAYS = {"d": 1.0, "day": 1.0, "days": 1.0, "wk": 7.0, "week": 7.0, "weeks": 7.0,
                 "mo": 30.0, "month": 30.0, "months": 30.0, "a": 365.0, "h": 1 / 24}
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_MG = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(?!\s*/\s*ML)", re.IGNORECASE)
_ATC_ANTIDEPRESSANT = "N06A"
IN_SCOPE = frozenset({"mdd", "sad"})
#: the date of a device known only from an active Device resource: replaced by the as-of date in `record`
IN_USE = date.max
_DOSAGE_ELEMENT = {"MedicationRequest": "dosageInstruction", "MedicationDispense": "dosageInstruction"}



def parse_date(value: Any, *, end: bool = False) -> date | None:
    """The calendar date of a FHIR date/dateTime/instant string, or None when it is not one."""
    if not isinstance(value, str):
        return None
    m = _DATE.match(value)
    if not m:
        return None
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    if y not in elements.YEARS:
        return None
    try:
        if d:
            return date(y, int(mo), int(d))
        if mo:
            month = int(mo)
            return date(y, month, calendar.monthrange(y, month)[1] if end else 1)
        return date(y, 12, 31) if end else date(y, 1, 1)
    except ValueError:
        return None


def parse_instant(value: Any) -> datetime | None:
    """The UTC instant of a FHIR dateTime/instant that has a time of day, or None (a date alone has none)."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.year not in elements.YEARS:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def reference_id(ref: Any, resource_type: str, aliases: dict[str, str]) -> str | None:
    """The id in a reference to `resource_type` in any real form: Type/id, absolute URL, urn:uuid."""
    if not isinstance(ref, dict):
        return None
    value = ref.get("reference")
    if not isinstance(value, str) or not value:
        return None
    if value in aliases:
        value = aliases[value]
    if value.startswith("urn:uuid:") or value.startswith("urn:oid:"):
        return value.rsplit(":", 1)[1]
    parts = value.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    if len(parts) >= 4 and parts[-2] == "_history" and parts[-4] == resource_type:
        return parts[-3]
    return None


def subject_of(resource: dict[str, Any], aliases: dict[str, str]) -> str | None:
    """The patient id a resource is about (Patient itself, subject or patient)."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    for key in ("subject", "patient"):
        pid = reference_id(resource.get(key), "Patient", aliases)
        if pid:
            return pid
    return None


FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_fhir_id(value: Any) -> bool:
    """True for a FHIR id: 1-64 of A-Z a-z 0-9 - . (no spaces, no newline)."""
    return isinstance(value, str) and FHIR_ID.fullmatch(value) is not None


def server_base(url: str) -> str | None:
    """The server base of an absolute resource URL (`https://h/fhir/Type/id[/_history/v]` → `https://h/fhir`)."""
    if "://" not in url:
        return None
    parts = url.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 6 and parts[-2] == "_history":
        parts = parts[:-2]
    return "/".join(parts[:-2]) if len(parts) >= 5 else None


def patient_of(resource: dict[str, Any], aliases: dict[str, str], bases: set[str]) -> tuple[str | None, str | None]:
    """(patient id, problem) of a resource's subject/patient, joining only references to this server.

    A reference joins a patient when it is relative (`Patient/id`, `Patient/id/_history/v`), a
    fullUrl of the same input (`urn:uuid:…` or an absolute URL seen as a fullUrl), or an absolute URL
    whose base is the base of the input's own fullUrls. A reference to another server, a conditional
    reference or an id that is not a FHIR id is a problem and joins nobody.
    """
    for key in ("subject", "patient"):
        ref = resource.get(key)
        value = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(value, str) or not value:
            continue
        value = aliases.get(value, value)
        if "?" in value:
            return None, f"{key} is a conditional reference ({value[:80]!r}); it cannot be resolved"
        if "://" in value:
            base = server_base(value)
            if base not in bases:
                return None, f"{key} points at another server ({value[:120]!r}); not merged with a local patient"
        pid = reference_id({"reference": value}, "Patient", {})
        if pid is None:
            continue
        if not is_fhir_id(pid):
            return None, f"{key} names a patient id that is not a FHIR id ({pid[:80]!r})"
        return pid, None
    return None, None


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class
    return get_fhir_model_class(resource_type)


_QUICK = QuickCheck()


def validation_error(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(element, message) of the first R4 structure error of a resource, or None when it is valid.
    The quick check answers for the resources it is sure of; the models for the others."""
    try:
        if _QUICK.accepts(resource):
            return None
        _model(resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        err = exc.errors()[0]
        element = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "(resource)"
        return element, err["msg"]
    except (LookupError, TypeError, ValueError, OverflowError, RecursionError) as exc:  # the models' own validators can raise
        return "(resource)", f"cannot be validated ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def _obj(holder: Any, key: str, element: str | None = None) -> dict[str, Any]:
    """holder[key] when it is a JSON object; another type is a problem on `element` (default: key)."""
    return elements.obj(holder, key, element or key)


def _codings(concept: Any, element: str) -> list[dict[str, Any]]:
    """Codings whose system and code are strings (others are problems on `element`)."""
    return elements.codings(concept, element)


def _texts(concept: Any, element: str) -> list[str]:
    return elements.texts(concept, element)


def _unit(quantity: Any) -> str | None:
    """A Quantity's unit code (or unit text) when it is a string."""
    if not isinstance(quantity, dict):
        return None
    for key in ("code", "unit"):
        if isinstance(quantity.get(key), str) and quantity[key]:
            return str(quantity[key])
    return None


def _num(value: Any, element: str = "value") -> float | None:
    """A finite, plausibly sized number (others are problems on `element`)."""
    return elements.number(value, element)


@dataclass
class RecordBuilder:
    """Collects one patient's facts and warnings as resources arrive in any order."""

    patient: str
    terminology: Terminology
    exposures: list[MedicationExposure] = field(default_factory=list)
    dispenses: list[Dispense] = field(default_factory=list)
    procedures: list[ProcedureEvent] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    intolerances: list[IntoleranceFact] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)
    pending: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    # scores and labs wait for validation until the patient turns out to need them (most never do)
    deferred: list[tuple[bytes, str, list[Measurement]]] = field(default_factory=list)
    administrations: dict[tuple[str, date], list[tuple[float | None, str]]] = field(
        default_factory=lambda: defaultdict(list))
    # reasonReference of an exposure (by index) waits for the Conditions of the whole record
    reason_refs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    procedure_reason_refs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    condition_reasons: dict[str, frozenset[str]] = field(default_factory=dict)

    def add_exposure(self, exposure: MedicationExposure, reason_refs: tuple[str, ...] = ()) -> None:
        if reason_refs:
            self.reason_refs[len(self.exposures)] = reason_refs
        self.exposures.append(exposure)

    def add_procedure(self, event: ProcedureEvent, reason_refs: tuple[str, ...] = ()) -> None:
        if reason_refs:
            self.procedure_reason_refs[len(self.procedures)] = reason_refs
        self.procedures.append(event)

    def _referenced(self, refs: tuple[str, ...]) -> frozenset[str]:
        return frozenset().union(*(self.condition_reasons.get(ref, frozenset()) for ref in refs))

    def resolve_reasons(self) -> None:
        """Add the concepts of each referenced Condition (disorders and indications) to its exposure or session."""
        for i, refs in self.reason_refs.items():
            found = self._referenced(refs)
            if found - self.exposures[i].reasons:
                self.exposures[i] = replace(self.exposures[i], reasons=self.exposures[i].reasons | found)
        for i, refs in self.procedure_reason_refs.items():
            found = self._referenced(refs)
            if found - self.procedures[i].reasons:
                self.procedures[i] = replace(self.procedures[i], reasons=self.procedures[i].reasons | found)
        self.reason_refs.clear()
        self.procedure_reason_refs.clear()

    def warn(self, resource: dict[str, Any] | None, message: str, *, element: str | None = None,
             source: str | None = None, code: str = "invalid") -> None:
        ref = _ref(resource) if resource is not None else None
        self.warnings.append(DataWarning(message=message, resource=ref, element=element, source=source, code=code))

    def needs_scores(self) -> bool:
        """True once the patient has a psychiatric diagnosis or treatment (scores can matter)."""
        return bool(self.exposures or self.dispenses or self.administrations or self.procedures
                    or any(c.concepts & IN_SCOPE for c in self.conditions))

    def record(self, as_of: date) -> PatientRecord:
        """The facts gathered so far; facts dated after `as_of` are dropped with a warning."""
        self.resolve_reasons()
        for (ingredient, day), doses in sorted(self.administrations.items()):
            known = [d for d, _ in doses if d is not None]
            self.exposures.append(MedicationExposure(
                ingredient=ingredient, source="administration", start=day, end=day,
                daily_dose=sum(known) if known else None, ref=doses[0][1]))
        self.administrations.clear()
        # an active Device of the patient is in use at the as-of date, unless an order or use statement dates it
        dated = {p.concept for p in self.procedures if p.when != IN_USE}
        self.procedures = [replace(p, when=as_of) if p.when == IN_USE else p for p in self.procedures
                           if p.when != IN_USE or p.concept not in dated]

        def keep(when: date | None, ref: str, what: str) -> bool:
            if when is not None and when > as_of:
                self.warnings.append(DataWarning(
                    message=f"{what} dated {when.isoformat()} is after the as-of date {as_of.isoformat()}; not used",
                    resource=ref, code="future-date"))
                return False
            return True

        return PatientRecord(
            patient=f"Patient/{self.patient}",
            exposures=tuple(e for e in self.exposures if keep(e.start, e.ref, e.source)),
            dispenses=tuple(d for d in self.dispenses if keep(d.handed_over, d.ref, "dispense")),
            procedures=tuple(p for p in self.procedures if keep(p.when, p.ref, "procedure")),
            conditions=tuple(c for c in self.conditions if keep(c.onset, c.ref, "condition onset")),
            measurements=tuple(m for m in self.measurements if keep(m.when, m.ref, "observation")),
            intolerances=tuple(i for i in self.intolerances if keep(i.when, i.ref, "intolerance")),
        )


def _ref(resource: dict[str, Any]) -> str:
    rid = resource.get("id")
    rtype = resource.get("resourceType", "Resource")
    return f"{rtype}/{rid}" if isinstance(rid, str) and rid else f"{rtype}/(no id)"



class AdapterBase:
    """State every resource family reads: terminology, validation switch, the Medication index."""

    def __init__(self, terminology: Terminology, *, validate: bool = True) -> None:
        self.t = terminology
        self.validate = validate
        self.medications: dict[str, dict[str, Any]] = {}
        self.obs_units = {oc.concept: oc.unit for oc in terminology.observations.values()}

    def _valid(self, builder: RecordBuilder, resource: dict[str, Any], source: str) -> bool:
        if not self.validate:
            return True
        problem = validation_error(resource)
        if problem is None:
            return True
        element, msg = problem
        builder.warn(resource, f"invalid {resource['resourceType']}: {element}: {msg}; skipped",
                     element=f"{resource['resourceType']}.{element}", source=source)
        return False

    def _reasons(self, r: dict[str, Any], aliases: dict[str, str], *, diagnosis: bool = False
                 ) -> tuple[frozenset[str], tuple[str, ...]]:
        """Concepts of reasonCode (conditions and indications tables) and the Condition refs of
        reasonReference (and, for an Encounter, diagnosis.condition), resolved when the record is built."""
        concepts: set[str] = set()
        for i, concept in enumerate(elements.objects(r.get("reasonCode"), "reasonCode")):
            for c in _codings(concept, f"reasonCode[{i}]"):
                if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
                    concepts |= self.t.reason_concepts(c["system"], c["code"])
        refs = []
        for ref in elements.objects(r.get("reasonReference"), "reasonReference"):
            cid = reference_id(ref, "Condition", aliases)
            if cid:
                refs.append(f"Condition/{cid}")
        if diagnosis:
            for d in elements.objects(r.get("diagnosis"), "diagnosis"):
                cid = reference_id(d.get("condition"), "Condition", aliases)
                if cid:
                    refs.append(f"Condition/{cid}")
        return frozenset(concepts), tuple(refs)
