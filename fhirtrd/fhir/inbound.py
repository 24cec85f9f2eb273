"""FHIR R4 resources → the classifier's facts, one patient at a time, reporting what it cannot use.

Why this module is careful:
- Only resources the classifier reads are validated with the fhir.resources R4B models (R4B reads R4
  data for these types); everything else is skipped after a dictionary lookup, because validating a
  whole bundle costs ~75 times the JSON parse. A relevant resource that fails validation becomes a
  warning naming its type, id and element, and is skipped; the rest of the patient is still used.
- Status `entered-in-error` is ignored everywhere; refuted Conditions too; fhirtrd's own outputs
  (recognised by their meta.tag) are never read back as input.
- Medications are resolved in the order of clinical-spec §2: ingredient code, product code (SCD/SBD)
  from mappings, Medication resource (contained or referenced, code then ingredient + strength), ATC,
  and last the ingredient name and "NN MG" in the display or text. Unresolved psychiatric-looking
  medications are reported, never guessed.
- Dates keep the calendar date as written (no time-zone shift); partial dates ("2024-05") take the
  first day of the period for a start and the last day for an end.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError

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
from fhirtrd.fhir.outbound import is_fhirtrd_output
from fhirtrd.terminology import ATC, Product, Terminology

MED_TYPES = frozenset({"MedicationStatement", "MedicationRequest", "MedicationDispense", "MedicationAdministration"})
RELEVANT = MED_TYPES | {"Patient", "Condition", "Observation", "Procedure", "AllergyIntolerance",
                        "AdverseEvent", "Medication"}
PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
DURATION_DAYS = {"d": 1.0, "day": 1.0, "days": 1.0, "wk": 7.0, "week": 7.0, "weeks": 7.0,
                 "mo": 30.0, "month": 30.0, "months": 30.0, "a": 365.0, "h": 1 / 24}
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_MG = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(?!\s*/\s*ML)", re.IGNORECASE)
_ATC_ANTIDEPRESSANT = "N06A"
IN_SCOPE = frozenset({"mdd", "sad"})
_DOSAGE_ELEMENT = {"MedicationRequest": "dosageInstruction", "MedicationDispense": "dosageInstruction"}


def parse_date(value: Any, *, end: bool = False) -> date | None:
    """The calendar date of a FHIR date/dateTime/instant string, or None when it is not one."""
    if not isinstance(value, str):
        return None
    m = _DATE.match(value)
    if not m:
        return None
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    try:
        if d:
            return date(y, int(mo), int(d))
        if mo:
            month = int(mo)
            return date(y, month, calendar.monthrange(y, month)[1] if end else 1)
        return date(y, 12, 31) if end else date(y, 1, 1)
    except ValueError:
        return None


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


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class
    return get_fhir_model_class(resource_type)


def validation_error(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(element, message) of the first R4 structure error of a resource, or None when it is valid."""
    try:
        _model(resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        err = exc.errors()[0]
        element = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "(resource)"
        return element, err["msg"]
    return None


def _obj(holder: Any, key: str) -> dict[str, Any]:
    """holder[key] when it is a JSON object, else an empty one (real data is often malformed)."""
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, dict) else {}


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _texts(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    out = [concept["text"]] if isinstance(concept.get("text"), str) else []
    out += [c["display"] for c in _codings(concept) if isinstance(c.get("display"), str)]
    return out


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
        for (ingredient, day), doses in sorted(self.administrations.items()):
            known = [d for d, _ in doses if d is not None]
            self.exposures.append(MedicationExposure(
                ingredient=ingredient, source="administration", start=day, end=day,
                daily_dose=sum(known) if known else None, ref=doses[0][1]))
        self.administrations.clear()

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


class Adapter:
    """Turns resources into facts on per-patient builders; holds the Medication index for references."""

    def __init__(self, terminology: Terminology, *, validate: bool = True) -> None:
        self.t = terminology
        self.validate = validate
        self.medications: dict[str, dict[str, Any]] = {}
        self.obs_units = {oc.concept: oc.unit for oc in terminology.observations.values()}
        self.handlers: dict[str, Callable[[RecordBuilder, dict[str, Any], str, dict[str, str]], None]] = {
            "Condition": self._condition, "Observation": self._observation, "Procedure": self._procedure,
            "MedicationStatement": self._medication_use, "MedicationRequest": self._medication_use,
            "MedicationDispense": self._medication_use, "MedicationAdministration": self._medication_use,
            "AllergyIntolerance": self._allergy, "AdverseEvent": self._adverse_event,
        }

    # -- dispatch --------------------------------------------------------------------------------

    def add(self, builder: RecordBuilder, resource: dict[str, Any], source: str,
            aliases: dict[str, str]) -> None:
        """Read one resource of `builder`'s patient (relevance is checked before validation)."""
        handler = self.handlers.get(resource["resourceType"])
        if handler is None or resource.get("status") == "entered-in-error" or is_fhirtrd_output(resource):
            return
        handler(builder, resource, source, aliases)

    def remember_medication(self, resource: dict[str, Any], full_url: str | None) -> None:
        rid = resource.get("id")
        if isinstance(rid, str):
            self.medications[f"Medication/{rid}"] = resource
        if full_url:
            self.medications[full_url] = resource

    def finish(self, builder: RecordBuilder) -> None:
        """Resolve late Medication references; validate scores and labs only if the patient needs them.

        Observations are the bulk of a record and are read only for a patient with a psychiatric
        diagnosis or treatment; for anyone else they are dropped unvalidated (they cannot change a
        result: no disorder is in scope without one of those).
        """
        pending, builder.pending = builder.pending, []
        for resource, source in pending:
            self._medication_use(builder, resource, source, {}, final=True)
        deferred, builder.deferred = builder.deferred, []
        if not builder.needs_scores():
            return
        for raw, source, measurements in deferred:
            if self._valid(builder, orjson.loads(raw), source):
                builder.measurements.extend(measurements)

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

    # -- conditions ------------------------------------------------------------------------------

    def _condition(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        concepts: set[str] = set()
        for c in _codings(r.get("code")):
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
                concepts |= self.t.condition_concepts(c["system"], c["code"])
        if not concepts or not self._valid(b, r, source):
            return
        verification = {c.get("code") for c in _codings(r.get("verificationStatus"))}
        if verification & {"refuted", "entered-in-error"}:
            return
        clinical = {c.get("code") for c in _codings(r.get("clinicalStatus"))}
        abatement = parse_date(r.get("abatementDateTime"), end=True) or parse_date(
            (r.get("abatementPeriod") or {}).get("end"), end=True)
        active = bool(clinical & {"active", "recurrence", "relapse"}) if clinical else abatement is None
        onset = (parse_date(r.get("onsetDateTime")) or parse_date((r.get("onsetPeriod") or {}).get("start"))
                 or parse_date(r.get("recordedDate")))
        b.conditions.append(ConditionFact(concepts=frozenset(concepts), onset=onset, abatement=abatement,
                                          active=active, ref=_ref(r), display=(_texts(r.get("code")) or [""])[0]))

    # -- observations ----------------------------------------------------------------------------

    def observation_hits(self, r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """(concept, value holder, element) for the code and each component the mappings know."""
        hits: list[tuple[str, dict[str, Any], str]] = []
        for c in _codings(r.get("code")):
            oc = self.t.observations.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if oc is not None:
                hits.append((oc.concept, r, "Observation.value"))
                break
        components = r.get("component")
        if isinstance(components, list):
            for i, comp in enumerate(components):
                if not isinstance(comp, dict):
                    continue
                for c in _codings(comp.get("code")):
                    oc = self.t.observations.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
                    if oc is not None:
                        hits.append((oc.concept, comp, f"Observation.component[{i}].value"))
                        break
        return hits

    def _observation(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        hits = self.observation_hits(r)
        if not hits or r.get("status") == "cancelled":
            return
        when = (parse_date(r.get("effectiveDateTime")) or parse_date((r.get("effectivePeriod") or {}).get("start"))
                or parse_date(r.get("effectiveInstant")) or parse_date(r.get("issued")))
        if when is None:
            b.warn(r, "observation has no effective date; not used", element="Observation.effective[x]", source=source)
            return
        found: list[Measurement] = []
        for concept, holder, element in hits:
            value, unit = _value(holder, self.t.answer_scores)
            if value is None:
                if "dataAbsentReason" not in holder:
                    b.warn(r, f"{concept} observation has no numeric value; not used", element=element, source=source)
                continue
            instrument = self.t.rules.instruments.get(concept)
            if instrument is not None:
                if not instrument.low <= value <= instrument.high:
                    b.warn(r, f"{concept} value {value:g} is outside the scale's range "
                              f"{instrument.low:g}-{instrument.high:g}; not used as a score",
                           element=element, source=source, code="value-out-of-range")
                    continue
            else:
                wanted = self.obs_units.get(concept, "{score}")
                converted = self.t.convert(value, unit, wanted)
                if converted is None:
                    b.warn(r, f"{concept} unit {unit!r} cannot be converted to {wanted}; not used",
                           element=f"{element}Quantity.unit", source=source, code="unknown-unit")
                    continue
                value = converted
            found.append(Measurement(concept=concept, value=value, when=when, ref=_ref(r)))
        if not found:
            return
        if b.needs_scores():
            if self._valid(b, r, source):
                b.measurements.extend(found)
        else:  # kept compact: most of these belong to patients who never need them
            b.deferred.append((orjson.dumps(r), source, found))

    # -- procedures ------------------------------------------------------------------------------

    def _procedure(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        concept = None
        for c in _codings(r.get("code")):
            concept = self.t.procedures.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if concept:
                break
        if concept is None or r.get("status") in ("not-done", "preparation") or not self._valid(b, r, source):
            return
        when = parse_date(r.get("performedDateTime")) or parse_date((r.get("performedPeriod") or {}).get("start"))
        if when is None:
            b.warn(r, "procedure has no performed date; not used", element="Procedure.performed[x]", source=source)
            return
        laterality = None
        sites = r.get("bodySite")
        for site in sites if isinstance(sites, list) else []:
            for c in _codings(site):
                laterality = laterality or self.t.laterality.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
        if laterality is None:
            words = " ".join(_texts(r.get("code"))).lower()
            laterality = "bilateral" if "bilateral" in words else "unilateral" if "unilateral" in words else None
        b.procedures.append(ProcedureEvent(concept=concept, when=when, ref=_ref(r), laterality=laterality))

    # -- medications -----------------------------------------------------------------------------

    def resolve(self, concept: Any, reference: Any, contained: dict[str, dict[str, Any]],
                aliases: dict[str, str]) -> tuple[Product | None, str | None, bool]:
        """(resolved ingredient, problem, waiting) for a medication[x]; waiting = Medication not seen yet."""
        texts: list[str] = []
        if concept is not None:
            hit = self._lookup_codes(concept)
            if hit:
                return hit, None, False
            texts = _texts(concept)
        elif isinstance(reference, dict):
            ref = reference.get("reference")
            med = None
            if isinstance(ref, str):
                ref = aliases.get(ref, ref)
                med = contained.get(ref[1:]) if ref.startswith("#") else self.medications.get(ref)
                if med is None and "/Medication/" in ref:
                    med = self.medications.get("Medication/" + ref.rsplit("/Medication/", 1)[1].split("/")[0])
            if med is None:
                if isinstance(reference.get("display"), str):
                    texts = [reference["display"]]
                else:
                    return None, f"Medication {ref!r} not found", isinstance(ref, str) and not ref.startswith("#")
            else:
                hit = self._lookup_codes(med.get("code"))
                if hit:
                    return hit, None, False
                hit = self._from_ingredients(med)
                if hit:
                    return hit, None, False
                texts = _texts(med.get("code"))
        for text in texts:
            ingredient = self.t.ingredient_in_text(text)
            if ingredient:
                strengths = {float(m) for m in _MG.findall(text)}
                strength = strengths.pop() if len(strengths) == 1 else None
                return Product(ingredient, strength, "mg"), None, False
        atc = [c.get("code") for c in _codings(concept) if c.get("system") == ATC and isinstance(c.get("code"), str)]
        if any(code.startswith(_ATC_ANTIDEPRESSANT) for code in atc):  # type: ignore[union-attr]
            return None, f"antidepressant (ATC {atc[0]}) whose ingredient is not in the mappings", False
        return None, None, False

    def _lookup_codes(self, concept: Any) -> Product | None:
        best: Product | None = None
        for c in _codings(concept):
            p = self.t.products.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if p is not None and (best is None or (best.strength is None and p.strength is not None)):
                best = p
        if best is None:
            return None
        strength = best.strength
        if strength is None:  # an ingredient code: a strength may still be in the display
            for text in _texts(concept):
                found = {float(m) for m in _MG.findall(text)}
                if len(found) == 1 and self.t.ingredient_in_text(text) == best.ingredient:
                    strength = found.pop()
                    break
        return Product(best.ingredient, strength, best.unit)

    def _from_ingredients(self, med: dict[str, Any]) -> Product | None:
        found: list[Product] = []
        for ing in med.get("ingredient") or []:
            if not isinstance(ing, dict):
                continue
            hit = self._lookup_codes(ing.get("itemCodeableConcept"))
            if hit is None:
                for text in _texts(ing.get("itemCodeableConcept")):
                    name = self.t.ingredient_in_text(text)
                    if name:
                        hit = Product(name, None, "mg")
            if hit is None:
                continue
            strength = _obj(ing, "strength")
            num, den = strength.get("numerator") or {}, strength.get("denominator") or {}
            value, unit = _num(num.get("value")), num.get("unit") or num.get("code")
            if value is not None and isinstance(unit, str):
                factor = self.t.dose_units.get(unit)
                per = _num(den.get("value")) or 1.0
                if factor and factor[0] == "mass":
                    hit = Product(hit.ingredient, value * factor[1] / per, "mg")
            found.append(hit)
        return found[0] if len(found) == 1 else None

    def _medication_use(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str],
                        *, final: bool = False) -> None:
        rtype = r["resourceType"]
        status = r.get("status")
        contained = {c["id"]: c for c in r.get("contained") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)}
        resolved, problem, waiting = self.resolve(r.get("medicationCodeableConcept"), r.get("medicationReference"),
                                                  contained, aliases)
        if resolved is None:
            if waiting and not final:
                b.pending.append((r, source))
            elif problem:
                b.warn(r, f"medication not resolved: {problem}; not used", element=f"{rtype}.medication[x]",
                       source=source, code="unresolved-medication")
            elif r.get("medicationCodeableConcept") is None and r.get("medicationReference") is None:
                b.warn(r, "no medication[x]; not used", element=f"{rtype}.medication[x]", source=source)
            return
        drug = self.t.rules.drugs[resolved.ingredient]
        if not self._valid(b, r, source):
            return
        ref = _ref(r)
        if rtype == "MedicationDispense":
            self._dispense(b, r, resolved, ref, source)
            return
        if rtype == "MedicationStatement" and status in ("not-taken", "intended"):
            return
        if rtype == "MedicationRequest" and (status in ("cancelled", "draft", "unknown")
                                             or r.get("intent") in ("proposal", "plan")):
            return
        if rtype == "MedicationAdministration":
            if status not in ("completed", "in-progress"):
                return
            day = parse_date(r.get("effectiveDateTime")) or parse_date((r.get("effectivePeriod") or {}).get("start"))
            if day is None:
                b.warn(r, "administration has no date; not used", element="MedicationAdministration.effective[x]",
                       source=source)
                return
            dosage = _obj(r, "dosage")
            dose = self._amount(b, r, dosage.get("dose"), resolved, "MedicationAdministration.dosage.dose", source)
            b.administrations[(resolved.ingredient, day)].append((self._plausible(b, r, drug.ingredient, dose, source), ref))
            return
        dosages = r.get("dosageInstruction" if rtype == "MedicationRequest" else "dosage")
        element = f"{rtype}.{'dosageInstruction' if rtype == 'MedicationRequest' else 'dosage'}"
        daily = self._daily_dose(b, r, dosages, resolved, element, source)
        daily = self._plausible(b, r, drug.ingredient, daily, source)
        reason = self._stop_reason(r)
        if rtype == "MedicationStatement":
            period = _obj(r, "effectivePeriod")
            start = parse_date(period.get("start")) or parse_date(r.get("effectiveDateTime")) or parse_date(r.get("dateAsserted"))
            end = parse_date(period.get("end"), end=True)
            if start is None:
                b.warn(r, "statement has no effective date; not used", element="MedicationStatement.effective[x]", source=source)
                return
            if end is None and status != "active" and "effectiveDateTime" in r:
                end = start
            b.exposures.append(MedicationExposure(
                ingredient=resolved.ingredient, source="statement", start=start, end=end, daily_dose=daily, ref=ref,
                active=status == "active", stopped=status == "stopped", stop_reason=reason))
            return
        dispense = _obj(r, "dispenseRequest")
        validity = _obj(dispense, "validityPeriod")
        start = parse_date(r.get("authoredOn")) or parse_date(validity.get("start"))
        if start is None:
            b.warn(r, "order has no authoredOn date; not used", element="MedicationRequest.authoredOn", source=source)
            return
        supply = self._supply_days(b, r, dispense, daily, resolved)
        bounds_end = _bounds_end(dosages, start)
        end = bounds_end or (parse_date(validity.get("end"), end=True) if supply is None else None)
        b.exposures.append(MedicationExposure(
            ingredient=resolved.ingredient, source="request", start=start,
            end=end,
            daily_dose=daily, ref=ref, active=status in ("active", "on-hold"),
            stopped=status in ("stopped", "cancelled"), stop_reason=reason, supply_days=supply))

    def _stop_reason(self, r: dict[str, Any]) -> str | None:
        reasons = r.get("statusReason")
        concepts = reasons if isinstance(reasons, list) else [reasons] if isinstance(reasons, dict) else []
        for concept in concepts:
            for c in _codings(concept):
                hit = self.t.stop_reasons.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
                if hit:
                    return hit
            for text in _texts(concept):
                hit = self.t.stop_reason_in_text(text)
                if hit:
                    return hit
        return None

    def _supply_days(self, b: RecordBuilder, r: dict[str, Any], dispense: dict[str, Any], daily: float | None,
                     resolved: Product) -> int | None:
        repeats = _num(dispense.get("numberOfRepeatsAllowed")) or 0.0
        duration = _obj(dispense, "expectedSupplyDuration")
        value = _num(duration.get("value"))
        unit = duration.get("code") or duration.get("unit") or "d"
        if value is not None and unit in DURATION_DAYS:
            return max(1, round(value * DURATION_DAYS[unit] * (1 + repeats)))
        quantity = _obj(dispense, "quantity")
        units = self._units_per_day(r.get("dosageInstruction"))
        qty = _num(quantity.get("value"))
        if qty and units:
            return max(1, round(qty / units * (1 + repeats)))
        return None

    def _dispense(self, b: RecordBuilder, r: dict[str, Any], resolved: Product, ref: str, source: str) -> None:
        if r.get("status") not in ("completed", None):
            return
        when = parse_date(r.get("whenHandedOver")) or parse_date(r.get("whenPrepared"))
        if when is None:
            b.warn(r, "dispense has no whenHandedOver date; not used", element="MedicationDispense.whenHandedOver", source=source)
            return
        supply = _obj(r, "daysSupply")
        days = _num(supply.get("value"))
        quantity = _num((r.get("quantity") or {}).get("value")) if isinstance(r.get("quantity"), dict) else None
        units = self._units_per_day(r.get("dosageInstruction"))
        if days is None and quantity and units:
            days = quantity / units
        if days is None or days <= 0:
            b.warn(r, "dispense has no usable daysSupply; not used for adherence", element="MedicationDispense.daysSupply",
                   source=source)
            return
        daily = self._daily_dose(b, r, r.get("dosageInstruction"), resolved, "MedicationDispense.dosageInstruction", source)
        if daily is None and quantity and resolved.strength:
            unit = (r.get("quantity") or {}).get("unit") or (r.get("quantity") or {}).get("code")
            kind = self.t.dose_units.get(unit) if isinstance(unit, str) else ("unit", 1.0)
            if kind and kind[0] == "unit":
                daily = quantity * resolved.strength / days
        daily = self._plausible(b, r, resolved.ingredient, daily, source)
        b.dispenses.append(Dispense(ingredient=resolved.ingredient, handed_over=when, days_supply=max(1, round(days)),
                                    daily_dose=daily, ref=ref))

    # -- dose arithmetic -------------------------------------------------------------------------

    def _per_day(self, dosage: dict[str, Any]) -> float | None:
        timing = _obj(dosage, "timing")
        repeat = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else None
        if repeat:
            freq = _num(repeat.get("frequency")) or 1.0
            period = _num(repeat.get("period")) or 1.0
            unit = repeat.get("periodUnit") or "d"
            if unit in PERIOD_DAYS and period > 0:
                return freq / (period * PERIOD_DAYS[unit])
        for c in _codings(timing.get("code")):
            hit = self.t.timing_codes.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if hit:
                return hit
        return None

    def _units_per_day(self, dosages: Any) -> float | None:
        """Dose units (tablets) per day of the first dosage, for supply arithmetic."""
        if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
            return None
        per_day = self._per_day(dosages[0])
        amount = _dose_quantity(dosages[0])
        if per_day is None or amount is None:
            return None
        value, unit = amount
        kind = self.t.dose_units.get(unit or "1")
        return value * per_day if kind and kind[0] == "unit" else None

    def _amount(self, b: RecordBuilder, r: dict[str, Any], quantity: Any, resolved: Product, element: str,
                source: str) -> float | None:
        """A dose quantity in mg: mass units convert, tablets multiply by the product strength."""
        if not isinstance(quantity, dict):
            return None
        value = _num(quantity.get("value"))
        if value is None:
            return None
        unit = quantity.get("code") or quantity.get("unit") or "1"
        kind = self.t.dose_units.get(unit) or self.t.dose_units.get(str(unit).lower())
        if kind is None:
            b.warn(r, f"dose unit {unit!r} is not known; daily dose unknown", element=element, source=source,
                   code="unknown-unit")
            return None
        if kind[0] == "mass":
            return value * kind[1]
        if resolved.strength is None:
            return None
        return value * kind[1] * resolved.strength

    def _daily_dose(self, b: RecordBuilder, r: dict[str, Any], dosages: Any, resolved: Product, element: str,
                    source: str) -> float | None:
        """mg/day: dose per administration × administrations per day, summed over concurrent dosages."""
        if not isinstance(dosages, list) or not dosages:
            return None
        first_seq = next((d.get("sequence") for d in dosages if isinstance(d, dict)), None)
        total = 0.0
        for i, dosage in enumerate(dosages):
            if not isinstance(dosage, dict) or dosage.get("sequence") != first_seq:
                continue
            amount = _dose_quantity(dosage)
            per_day = self._per_day(dosage)
            if amount is None or per_day is None:
                return None
            mg = self._amount(b, r, {"value": amount[0], "unit": amount[1]}, resolved,
                              f"{element}[{i}].doseAndRate.doseQuantity", source)
            if mg is None:
                return None
            total += mg * per_day
        return round(total, 4) if total > 0 else None

    def _plausible(self, b: RecordBuilder, r: dict[str, Any], ingredient: str, dose: float | None,
                   source: str) -> float | None:
        drug = self.t.rules.drugs[ingredient]
        if dose is None or drug.min_daily_dose is None:
            return dose
        if dose > drug.min_daily_dose * self.t.rules.t("absurd_dose_factor") or dose <= 0:
            b.warn(r, f"daily dose {dose:g} {drug.dose_unit} of {ingredient} is implausible; dose treated as unknown",
                   element=f"{r['resourceType']}.{_DOSAGE_ELEMENT.get(r['resourceType'], 'dosage')}", source=source,
                   code="implausible-dose")
            return None
        return dose

    # -- intolerance -----------------------------------------------------------------------------

    def _allergy(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        concepts = [r.get("code")] + [x.get("substance") for x in r.get("reaction") or [] if isinstance(x, dict)]
        ingredient = None
        for concept in concepts:
            hit, _, _ = self.resolve(concept, None, {}, aliases) if concept else (None, None, False)
            if hit:
                ingredient = hit.ingredient
                break
        if ingredient is None or not self._valid(b, r, source):
            return
        verification = {c.get("code") for c in _codings(r.get("verificationStatus"))}
        if verification & {"refuted", "entered-in-error"}:
            return
        if r.get("type") == "allergy":
            return  # clinical-spec §2.2 counts intolerance; a true allergy is not a trial outcome
        when = parse_date(r.get("onsetDateTime")) or parse_date(r.get("recordedDate"))
        b.intolerances.append(IntoleranceFact(ingredient=ingredient, when=when, ref=_ref(r)))

    def _adverse_event(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        ingredient = None
        for entity in r.get("suspectEntity") or []:
            if not isinstance(entity, dict):
                continue
            instance = entity.get("instance")
            hit, _, _ = self.resolve(None, instance, {}, aliases)
            if hit:
                ingredient = hit.ingredient
                break
        if ingredient is None or r.get("actuality") == "potential" or not self._valid(b, r, source):
            return
        when = parse_date(r.get("date")) or parse_date(r.get("detected"))
        b.intolerances.append(IntoleranceFact(ingredient=ingredient, when=when, ref=_ref(r)))


def _bounds_end(dosages: Any, start: date) -> date | None:
    """The end of the first dosage's timing bounds (boundsPeriod.end, or start + boundsDuration)."""
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        return None
    timing = _obj(dosages[0], "timing")
    repeat = _obj(timing, "repeat")
    period = _obj(repeat, "boundsPeriod")
    end = parse_date(period.get("end"), end=True)
    if end is not None:
        return end
    duration = _obj(repeat, "boundsDuration")
    value, unit = _num(duration.get("value")), duration.get("code") or duration.get("unit")
    if value is not None and unit in DURATION_DAYS:
        return start + timedelta(days=max(0, round(value * DURATION_DAYS[unit]) - 1))
    return None


def _dose_quantity(dosage: dict[str, Any]) -> tuple[float, str | None] | None:
    for dr in dosage.get("doseAndRate") or []:
        if not isinstance(dr, dict):
            continue
        q = dr.get("doseQuantity")
        if isinstance(q, dict) and _num(q.get("value")) is not None:
            unit = q.get("code") or q.get("unit")
            return float(q["value"]), unit if isinstance(unit, str) else None
        rng = dr.get("doseRange")
        if isinstance(rng, dict) and isinstance(rng.get("low"), dict) and _num(rng["low"].get("value")) is not None:
            low = rng["low"]
            unit = low.get("code") or low.get("unit")
            return float(low["value"]), unit if isinstance(unit, str) else None
    return None


def _value(holder: dict[str, Any], answers: dict[tuple[str, str], float]) -> tuple[float | None, str | None]:
    """A numeric value: integer, quantity, decimal, a numeric string, or a scored answer code."""
    if "valueInteger" in holder:
        return _num(holder["valueInteger"]), None
    if isinstance(holder.get("valueString"), str):
        try:
            return float(holder["valueString"].strip()), None
        except ValueError:
            return None, None
    for c in _codings(holder.get("valueCodeableConcept")):
        for ext in c.get("extension") or []:
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith(("/ordinalValue", "/itemWeight")):
                return _num(ext.get("valueDecimal")), None
        hit = answers.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
        if hit is not None:
            return hit, None
    q = holder.get("valueQuantity")
    if isinstance(q, dict):
        unit = q.get("code") or q.get("unit")
        return _num(q.get("value")), unit if isinstance(unit, str) else None
    if "valueDecimal" in holder:
        return _num(holder["valueDecimal"]), None
    return None, None

