"""The assessment contract (clinical-spec §9) written back as FHIR R4 transaction Bundles.

Why it looks the way it does (details and examples in docs/fhir-output.md):

- One transaction Bundle per patient: a Device (fhirtrd and its version), per assessed disorder an
  assessment Observation with one Observation per trial (hasMember), the Flags, a RiskAssessment
  for the next-step remission likelihood, and one Provenance whose targets are all those outputs.
- Idempotent by construction. Every Observation, Flag and RiskAssessment carries the business
  identifier `<patient id>/<disorder>/<kind>[/<key>]` and is written by conditional update
  (`PUT Type?identifier=system|value`): a second run updates, never duplicates. The Device is shared
  by every patient and never changes for a version, so it is a conditional create
  (`ifNoneExist: identifier=…`). Provenance has no identifier in R4, so it is a conditional create
  keyed by its content-hash tag (`ifNoneExist: _tag=…|<hash>`): an unchanged assessment adds no
  second Provenance. fullUrls are `urn:uuid:` uuid5 of the identifier, so two runs produce the same
  bytes except the documented timestamps `Observation.issued` and `Provenance.recorded`.
- Every output carries meta.security AIAST, the `fhirtrd-output` tag (so a reader ignores it, see
  `is_fhirtrd_output`) and a content-hash tag: sha256 over the resource as it stands in the bundle
  without `id`, `meta` and the timestamps, first 32 hex characters. The sync compares it to skip
  unchanged resources.
- Every code comes from the contract dict and must be defined in the fhirtrd CodeSystem
  (mappings/fhir); an undefined one is an `UndefinedCodeError`, never an invented code.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from fhirtrd import __version__
from fhirtrd.fhir.codesystem import DEFAULT_BASE, Concept, all_concepts
from fhirtrd.fhir.outbound_errors import InvalidResultError, UndefinedCodeError

__all__ = [
    "OutputSettings",
    "build_transaction",
    "content_hash",
    "is_fhirtrd_output",
    "iter_bundles",
    "merge_transactions",
    "output_resources",
    "plan_flag_deactivations",
    "write_bundles",
]

OUTPUT_TAG = "fhirtrd-output"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
_ABSOLUTE_REF = re.compile(
    r"^https?://\S+/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$"
)
_TIMESTAMPS = {"Observation": ("issued",), "Provenance": ("recorded",)}
_STAGE_LABEL = {"mdd": "Thase–Rush stage", "sad": "TR-SAD stage"}
_ASSESSMENT_CODE = {"mdd": "trd-assessment", "sad": "tr-sad-assessment"}
_METHOD = {"mdd": "thase-rush", "sad": "sad-staging"}
_RESISTANCE_FLAG = {"mdd": "treatment-resistant-depression", "sad": "treatment-resistant-sad"}
_SAFETY_FINDINGS = frozenset({"misdiagnosis-bipolar"})


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """Where the outputs point: canonical base, identifier system, device; derived fields default
    from `canonical_base` when left empty."""

    canonical_base: str = DEFAULT_BASE
    codesystem: str = ""
    identifier_system: str = ""
    content_hash_system: str = ""
    device_name: str = "fhirtrd"
    device_version: str = __version__
    device_manufacturer: str = "fhirtrd project"
    link_inputs: bool = True  # False: input references become display text only (other server)
    namespace: uuid.UUID = field(default=uuid.NAMESPACE_URL)

    def __post_init__(self) -> None:
        base = self.canonical_base.rstrip("/")
        defaults = {
            "codesystem": f"{base}/CodeSystem/fhirtrd",
            "identifier_system": f"{base}/identifier",
            "content_hash_system": f"{base}/CodeSystem/content-hash",
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if self.namespace == uuid.NAMESPACE_URL:
            object.__setattr__(self, "namespace", uuid.uuid5(uuid.NAMESPACE_URL, self.identifier_system))


# --- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tables:
    codes: dict[str, dict[str, str]]
    units: dict[str, dict[str, str]]
    flag_detail: str
    entity_role: str
    device_name_type: str
    targets: dict[str, frozenset[str]]


@lru_cache(maxsize=1)
def _concepts() -> dict[str, Concept]:
    """The fhirtrd CodeSystem's concepts, read once per process (not once per patient); read-only."""
    return all_concepts("fhirtrd")


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    path = resources.files("fhirtrd.mappings").joinpath("fhir", "output-codes.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    strip = ("source",)
    return _Tables(
        codes={k: {f: v for f, v in c.items() if f not in strip} for k, c in raw["codes"].items()},
        units={k: {f: v for f, v in u.items() if f not in strip} for k, u in raw["units"].items()},
        flag_detail=raw["extensions"]["flag-detail"]["url"],
        entity_role=raw["provenance_entity_role"]["code"],
        device_name_type=raw["device_name_type"]["code"],
        targets={k: frozenset(v["types"]) for k, v in raw["reference_targets"].items()},
    )


def _coding(name: str) -> dict[str, str]:
    return dict(_tables().codes[name])


def _cc(name: str) -> dict[str, Any]:
    return {"coding": [_coding(name)]}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    u = _tables().units[unit]
    return {"value": value, "unit": u["unit"], "system": u["system"], "code": u["code"]}


# --- small helpers --------------------------------------------------------------------------


def _prune(value: Any) -> Any:
    """Drop None, empty strings, empty lists and empty objects (FHIR forbids them)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [_prune(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    return value


def _instant(when: datetime, what: str) -> str:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {when!r}")
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}".rstrip("0").rstrip(".")


def _canonical(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(resource: dict[str, Any]) -> str:
    """sha256 (32 hex) of the resource without id, meta and its timestamps (module docstring)."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    for name in _TIMESTAMPS.get(str(resource.get("resourceType")), ()):
        body.pop(name, None)
    return hashlib.sha256(_canonical(body)).hexdigest()[:32]


def is_fhirtrd_output(resource: dict[str, Any]) -> bool:
    """True for a resource fhirtrd wrote (meta.tag `fhirtrd-output` of a fhirtrd CodeSystem)."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return False
    for tag in meta.get("tag") or ():
        if (
            isinstance(tag, dict)
            and tag.get("code") == OUTPUT_TAG
            and str(tag.get("system", "")).endswith("/CodeSystem/fhirtrd")
        ):
            return True
    return False


def _parse_ref(ref: str) -> tuple[str, str] | None:
    """(resource type, reference) of a literal reference a server can resolve, else None."""
    for pattern in (_RELATIVE_REF, _ABSOLUTE_REF):
        m = pattern.match(ref)
        if m:
            return m.group(1), ref
    return None


# --- the builder ----------------------------------------------------------------------------


class _Writer:
    """Builds the resources of one patient; knows the patient for precise errors."""

    def __init__(self, result: dict[str, Any], settings: OutputSettings, issued: str) -> None:
        self.settings = settings
        self.issued = issued
        self.concepts: dict[str, Concept] = _concepts()
        patient = result.get("patient") if isinstance(result, dict) else None
        if not isinstance(patient, str):
            raise InvalidResultError(None, "patient", patient, "must be a 'Patient/<id>' reference")
        self.patient = patient
        kind, _, pid = patient.partition("/")
        if kind != "Patient" or not _FHIR_ID.match(pid):
            raise InvalidResultError(patient, "patient", patient, "must be 'Patient/<FHIR id>'")
        self.pid = pid
        self.as_of = self._date(result.get("as_of"), "as_of")
        self.device_url = ""

    # values ---------------------------------------------------------------------------------

    def fail(self, element: str, value: object, problem: str) -> InvalidResultError:
        return InvalidResultError(self.patient, element, value, problem)

    def _date(self, value: object, element: str) -> str:
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        raise self.fail(element, value, "must be a date YYYY-MM-DD")

    def req(self, obj: dict[str, Any], key: str, element: str, kind: type | tuple[type, ...]) -> Any:
        value = obj.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{element}.{key}", value, f"is required and must be {kind}")
        return value

    def opt_list(self, obj: dict[str, Any], key: str, element: str) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{element}.{key}", value, "must be a list")
        return value

    def opt_num(self, obj: dict[str, Any], key: str, element: str) -> float | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{element}.{key}", value, "must be a number")
        return value

    def concept(self, group: str, value: object, element: str) -> Concept:
        c = self.concepts.get(value) if isinstance(value, str) else None
        if c is None or group not in c.groups:
            raise UndefinedCodeError(self.patient, element, value, group)
        return c

    def coding(self, group: str, value: object, element: str) -> dict[str, str]:
        c = self.concept(group, value, element)
        return {"system": self.settings.codesystem, "code": c.code, "display": c.display}

    def cc(self, group: str, value: object, element: str, text: str = "") -> dict[str, Any]:
        return {"coding": [self.coding(group, value, element)], "text": text}

    def display(self, group: str, value: object, element: str) -> str:
        return self.concept(group, value, element).display

    def phrase(self, group: str, value: object, element: str) -> str:
        """The display as a word inside a sentence (lower case unless it is an acronym)."""
        text = self.display(group, value, element)
        first = text.split(" ")[0]
        return text if first.isupper() or any(ch.isupper() for ch in first[1:]) else text.lower()

    # identity -------------------------------------------------------------------------------

    def identifier(self, *parts: str) -> dict[str, str]:
        return {"system": self.settings.identifier_system, "value": "/".join(parts)}

    def full_url(self, resource_type: str, identity: str) -> str:
        return f"urn:uuid:{uuid.uuid5(self.settings.namespace, f'{resource_type}|{identity}')}"

    def finish(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Prune, then put meta (output tag, content hash, AIAST) right after resourceType."""
        body = _prune(resource)
        meta = {
            "tag": [
                {"system": self.settings.codesystem, "code": OUTPUT_TAG,
                 "display": self.concepts[OUTPUT_TAG].display},
                {"system": self.settings.content_hash_system, "code": content_hash(body)},
            ],
            "security": [_coding("security-aiast")],
        }
        rtype = body.pop("resourceType")
        return {"resourceType": rtype, "meta": meta, **body}

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        ident = resource["identifier"][0]
        rtype = resource["resourceType"]
        system = quote(ident["system"], safe=":/")
        value = quote(ident["value"], safe="/")
        return {
            "fullUrl": self.full_url(rtype, ident["value"]),
            "resource": resource,
            "request": {"method": "PUT", "url": f"{rtype}?identifier={system}|{value}"},
        }

    def literal(self, ref: str, element: str) -> dict[str, str] | None:
        """An input reference for `element` if its type is allowed there, else None."""
        parsed = _parse_ref(ref)
        allowed = _tables().targets.get(element)
        if parsed is None or not self.settings.link_inputs:
            return None
        if allowed is not None and parsed[0] not in allowed:
            return None
        return {"reference": parsed[1]}

    # resources ------------------------------------------------------------------------------

    def device(self) -> dict[str, Any]:
        s = self.settings
        value = f"device/{s.device_name}/{s.device_version}"
        resource = self.finish(
            {
                "resourceType": "Device",
                "identifier": [{"system": s.identifier_system, "value": value}],
                "status": "active",
                "manufacturer": s.device_manufacturer,
                "deviceName": [{"name": s.device_name, "type": _tables().device_name_type}],
                "version": [{"value": s.device_version}],
                "note": [{"text": "Classifies treatment-resistant depression and social anxiety"
                          " disorder from FHIR data; its outputs are decision support for a"
                          " clinician, not orders."}],
            }
        )
        self.device_url = self.full_url("Device", value)
        system = quote(s.identifier_system, safe=":/")
        return {
            "fullUrl": self.device_url,
            "resource": resource,
            "request": {"method": "POST", "url": "Device",
                        "ifNoneExist": f"identifier={system}|{quote(value, safe='/')}"},
        }

    def assessment_entries(self, a: dict[str, Any], element: str) -> list[dict[str, Any]]:
        disorder_c = self.concept("disorders", a.get("disorder"), f"{element}.disorder")
        disorder = disorder_c.code
        stage = self.req(a, "stage", element, str)
        self.concept("stages", stage, f"{element}.stage")
        trials = self.opt_list(a, "trials", element)
        trial_entries = self._trial_entries(trials, disorder, element)
        obs = self.assessment_observation(a, element, disorder, [e["fullUrl"] for e in trial_entries])
        obs_entry = self.put(obs)
        flags = [self.put(f) for f in self.flags(a, element, disorder, obs_entry["fullUrl"])]
        risk = self.put(self.risk(a, element, disorder, obs_entry["fullUrl"]))
        defs = self.definition_entries(a, element, disorder, obs_entry["fullUrl"], trials, trial_entries)
        return [obs_entry, *trial_entries, *flags, risk, *defs]

    def definition_entries(self, a: dict[str, Any], element: str, disorder: str, obs_url: str,
                           trials: list[Any], trial_entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One Observation per published TRD definition (docs/fhir-output.md): value = met, components
        date-met and definition-value, derivedFrom = the assessment and the trial Observations behind it."""
        out = []
        for i, d in enumerate(self.opt_list(a, "definitions", element)):
            el = f"{element}.definitions[{i}]"
            if not isinstance(d, dict):
                raise self.fail(el, d, "must be an object")
            key = self.req(d, "id", el, str)
            met = self.req(d, "met", el, bool)
            try:
                code = self.cc("trd-definitions", key, f"{el}.id")
            except UndefinedCodeError:
                code = {"text": key}  # a local definition added with --mappings
            comps = []
            if d.get("date_met") is not None:
                comps.append(self.comp("date-met", valueDateTime=self._date(d["date_met"], f"{el}.date_met")))
            value = self.opt_num(d, "value", el)
            if value is not None:
                comps.append(self.comp("definition-value", valueQuantity=_quantity(value, "{score}")))
            refs = set(self.opt_list(d, "evidence", el))
            members = [e["fullUrl"] for t, e in zip(trials, trial_entries, strict=True)
                       if isinstance(t, dict) and refs & set(t.get("evidence") or ())]
            out.append(self.put(self.finish({
                "resourceType": "Observation",
                "identifier": [self.identifier(self.pid, disorder, "definition", key)],
                "status": "final",
                "category": [_cc("observation-category-survey")],
                "code": code,
                "subject": {"reference": self.patient},
                "effectiveDateTime": self.as_of,
                "issued": self.issued,
                "valueBoolean": met,
                "device": {"reference": self.device_url},
                "derivedFrom": [{"reference": obs_url}, *({"reference": m} for m in members)],
                "component": comps,
            })))
        return out

    def _trial_entries(self, trials: list[Any], disorder: str, element: str) -> list[dict[str, Any]]:
        keys: set[str] = set()
        return [
            self.trial_entry(t, disorder, f"{element}.trials[{i}]", keys)
            for i, t in enumerate(trials)
        ]

    def evidence(self, a: dict[str, Any], element: str) -> list[str]:
        """The assessment's input references: its `evidence` list, or the union of the parts."""
        refs: set[str] = set()
        listed = a.get("evidence")
        if listed:
            refs.update(self.opt_list(a, "evidence", element))
        for key in ("diagnosis_evidence", "score_evidence", "inflammation_evidence"):
            refs.update(self.opt_list(a, key, element))
        for i, t in enumerate(self.opt_list(a, "trials", element)):
            refs.update(self.opt_list(t, "evidence", f"{element}.trials[{i}]"))
        for i, f in enumerate(self.opt_list(a, "findings", element)):
            refs.update(self.opt_list(f, "evidence", f"{element}.findings[{i}]"))
        for ref in refs:
            if not isinstance(ref, str) or not ref:
                raise self.fail(f"{element}.evidence", ref, "must be a reference string")
        return sorted(refs)

    def derived_from(self, refs: Iterable[str]) -> list[dict[str, str]]:
        out = [self.literal(r, "Observation.derivedFrom") for r in sorted(set(refs))]
        return [r for r in out if r is not None]

    def trial_key(self, t: dict[str, Any], element: str, keys: set[str]) -> str:
        treatment = self.req(t, "treatment", element, str)
        start = self._date(t.get("start"), f"{element}.start")
        slug = re.sub(r"[^a-z0-9.\-]+", "-", treatment.lower()).strip("-") or "treatment"
        key = f"{slug}-{start}"
        n = 2
        while key in keys:
            key = f"{slug}-{start}-{n}"
            n += 1
        keys.add(key)
        return key

    def trial_entry(
        self, t: dict[str, Any], disorder: str, element: str, keys: set[str]
    ) -> dict[str, Any]:
        if not isinstance(t, dict):
            raise self.fail(element, t, "must be an object")
        key = self.trial_key(t, element, keys)
        treatment = t["treatment"]
        kind = self.req(t, "kind", element, str)
        start = self._date(t.get("start"), f"{element}.start")
        end = None if t.get("ongoing") or t.get("end") is None else self._date(t["end"], f"{element}.end")
        comps: list[dict[str, Any]] = [
            self.comp("treatment", valueCodeableConcept={"text": treatment}),
            self.comp("treatment-kind", valueCodeableConcept=self.cc("treatment-kinds", kind, f"{element}.kind")),
        ]
        if t.get("class") is not None:
            comps.append(self.comp("treatment-class", valueCodeableConcept=self.cc(
                "treatment-classes", t["class"], f"{element}.class")))
        for name, unit in (("daily_dose", "mg/d"), ("min_adequate_dose", "mg/d"), ("weeks_adequate", "wk")):
            value = self.opt_num(t, name, element)
            if value is not None:
                code = {"daily_dose": "daily-dose", "min_adequate_dose": "min-adequate-dose",
                        "weeks_adequate": "weeks-at-adequate-dose"}[name]
                comps.append(self.comp(code, valueQuantity=_quantity(value, unit)))
        sessions = t.get("sessions")
        if sessions is not None:
            comps.append(self.comp("sessions", valueInteger=self.req(t, "sessions", element, int)))
        if t.get("laterality") is not None:
            comps.append(self.comp("laterality", valueCodeableConcept=self.cc(
                "lateralities", t["laterality"], f"{element}.laterality")))
        if t.get("adherence") is not None:
            comps.append(self.comp("adherence", valueCodeableConcept=self.cc(
                "adherence-states", t["adherence"], f"{element}.adherence")))
        pdc = self.opt_num(t, "pdc", element)
        if pdc is not None:
            comps.append(self.comp("proportion-days-covered", valueQuantity=_quantity(round(pdc * 100, 1), "%")))
        for name in ("adequate", "failed", "ongoing"):
            if isinstance(t.get(name), bool):
                comps.append(self.comp(name, valueBoolean=t[name]))
        for i, f in enumerate(self.opt_list(t, "findings", element)):
            comps.append(self.comp("trial-finding", valueCodeableConcept=self.cc(
                "findings", f, f"{element}.findings[{i}]")))
        caveats = list(self.opt_list(t, "caveats", element))
        if t.get("failure_inferred") and "failure-inferred" not in caveats:
            caveats.append("failure-inferred")
        for i, c in enumerate(caveats):
            comps.append(self.comp("trial-caveat", valueCodeableConcept=self.cc(
                "caveats", c, f"{element}.caveats[{i}]")))
        if t.get("episode") is not None:
            comps.append(self.comp("episode", valueCodeableConcept=self.cc(
                "episodes", t["episode"], f"{element}.episode")))
        if t.get("instrument") is not None:
            comps.append(self.comp("instrument", valueCodeableConcept=self.cc(
                "instruments", t["instrument"], f"{element}.instrument")))
        for name, code in (("baseline", "baseline-score"), ("endpoint", "endpoint-score")):
            value = self.opt_num(t, name, element)
            if value is not None:
                comps.append(self.comp(code, valueQuantity=_quantity(value, "{score}")))
        change = self.opt_num(t, "change", element)
        if change is not None:
            comps.append(self.comp("score-change", valueQuantity=_quantity(round(change * 100, 1), "%")))
        outcome = t.get("outcome") or "unknown"
        resource = {
            "resourceType": "Observation",
            "identifier": [self.identifier(self.pid, disorder, "trial", key)],
            "status": "final",
            "category": [_cc("observation-category-therapy")],
            "code": self.cc("assessment-kinds", "treatment-trial", f"{element}",
                            text=f"{self.trial_phrase(t, element)}"),
            "subject": {"reference": self.patient},
            "effectivePeriod": {"start": start, "end": end},
            "issued": self.issued,
            "valueCodeableConcept": self.cc("outcomes", outcome, f"{element}.outcome"),
            "derivedFrom": self.derived_from(self.opt_list(t, "evidence", element)),
            "device": {"reference": self.device_url},
            "component": comps,
        }
        return self.put(self.finish(resource))

    def comp(self, code: str, **value: Any) -> dict[str, Any]:
        return {"code": self.cc("components", code, "component"), **value}

    # text -------------------------------------------------------------------------------------

    def trial_phrase(self, t: dict[str, Any], element: str) -> str:
        """'sertraline (SSRI, 12 weeks at 100 mg/day, nonresponse on PHQ-9 18→16)'."""
        kind = t.get("kind")
        parts: list[str] = []
        if kind in ("medication", "augmentation", "adjunct"):
            if t.get("class") is not None:
                parts.append(self.display("treatment-classes", t["class"], f"{element}.class"))
            dose, weeks = t.get("daily_dose"), t.get("weeks_adequate")
            if dose is not None and weeks:
                parts.append(f"{_num(weeks)} weeks at {_num(dose)} mg/day")
            elif dose is not None:
                parts.append(f"up to {_num(dose)} mg/day")
        else:
            if t.get("laterality") is not None:
                parts.append(self.phrase("lateralities", t["laterality"], f"{element}.laterality"))
            if t.get("sessions") is not None:
                parts.append(f"{t['sessions']} sessions")
        outcome = t.get("outcome") or "unknown"
        said = self.phrase("outcomes", outcome, f"{element}.outcome")
        instrument, b, e = t.get("instrument"), t.get("baseline"), t.get("endpoint")
        if outcome != "unknown" and instrument and b is not None and e is not None:
            shown = self.display("instruments", instrument, f"{element}.instrument")
            said = f"{said} on {shown} {_num(b)}→{_num(e)}"
        elif outcome == "unknown" and t.get("failure_inferred"):
            said = "no paired scores; failure inferred from the later switch or augmentation"
        elif outcome == "unknown":
            said = "outcome not scored"
        parts.append(said)
        if t.get("ongoing"):
            parts.append("ongoing")
        name = "ECT" if kind == "ect" else str(t.get("treatment"))
        return f"{name} ({', '.join(parts)})"

    def note(self, a: dict[str, Any], element: str, disorder: str) -> str:
        stage = a["stage"]
        status = a.get("status")
        head = f"{_STAGE_LABEL[disorder]} {stage}"
        if status in ("provisional", "not-applicable"):
            head += f" ({self.phrase('statuses', status, f'{element}.status')})"
        trials = [t for t in self.opt_list(a, "trials", element) if isinstance(t, dict)]
        failed = [(i, t) for i, t in enumerate(trials) if t.get("failed") and t.get("kind") != "advanced"]
        if failed:
            phrases = [self.trial_phrase(t, f"{element}.trials[{i}]") for i, t in failed]
            listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
            sentences = [f"{head}: failed adequate trial{'s' if len(phrases) > 1 else ''} of {listed}."]
        else:
            sentences = [f"{head}: no failed adequate trial."]
        n = a.get("failed_adequate_trials")
        tr = "yes" if a.get("treatment_resistant") else "no"
        sentences.append(f"Treatment-resistant: {tr} ({n} failed adequate trial{'s' if n != 1 else ''}).")
        details = {f.get("code"): f.get("detail") for f in self.opt_list(a, "findings", element)
                   if isinstance(f, dict)}
        pseudo = self.opt_list(a, "pseudo_resistance", element)
        if pseudo:
            items = []
            for i, code in enumerate(pseudo):
                text = self.phrase("findings", code, f"{element}.pseudo_resistance[{i}]")
                items.append(f"{text} ({details[code]})" if details.get(code) else text)
            sentences.append("Pseudo-resistance to address first: " + "; ".join(items) + ".")
        not_counted = []
        for i, t in enumerate(trials):
            if t.get("failed") or not t.get("findings"):
                continue
            why = ", ".join(self.phrase("findings", f, f"{element}.trials[{i}].findings")
                            for f in t["findings"])
            not_counted.append(f"{t.get('treatment')} ({why})")
        if not_counted:
            sentences.append("Not counted as failed: " + "; ".join(not_counted) + ".")
        caveats = self.opt_list(a, "caveats", element)
        if caveats:
            sentences.append("Caveats: " + "; ".join(
                self.phrase("caveats", c, f"{element}.caveats") for c in caveats) + ".")
        msm = a.get("msm")
        if isinstance(msm, dict):
            if msm.get("total") is not None:
                band = f" ({msm['band']})" if msm.get("band") else ""
                sentences.append(f"Maudsley staging: {msm['total']}{band}.")
            elif msm.get("reason"):
                sentences.append(f"Maudsley staging not computed: {msm['reason']}.")
        inflammation = a.get("inflammation")
        if inflammation and inflammation != "unknown":
            sentences.append("Inflammation (CRP): " + self.phrase(
                "inflammation-states", inflammation, f"{element}.inflammation") + ".")
        subtypes = self.opt_list(a, "subtypes", element)
        if subtypes:
            sentences.append("Subtype hints: " + ", ".join(
                self.phrase("subtypes", s, f"{element}.subtypes") for s in subtypes) + ".")
        step = a.get("next_step")
        if isinstance(step, dict) and step.get("strategy"):
            text = "Next step: " + self.phrase("strategies", step["strategy"], f"{element}.next_step")
            if step.get("suggestions"):
                text += " (suggested: " + ", ".join(step["suggestions"]) + ")"
            also = [self.phrase("strategies", s, f"{element}.next_step.also") for s in step.get("also") or ()]
            if also:
                text += "; also " + ", ".join(s[0].lower() + s[1:] for s in also)
            if step.get("reason"):
                text += f" — {step['reason']}"
            sentences.append(text + ".")
        lik = a.get("next_step_likelihood")
        if isinstance(lik, dict) and isinstance(lik.get("p_remission"), (int, float)):
            steps = lik.get("prior_failed_steps")
            after = f", {steps} prior failed step{'s' if steps != 1 else ''}" if steps is not None else ""
            sentences.append(f"Estimated remission at the next step: {lik['p_remission'] * 100:.1f} %"
                             f" (STAR*D{after}).")
        for i, adv in enumerate(self.opt_list(a, "advisories", element)):
            sentences.append(self.display("advisories", adv, f"{element}.advisories[{i}]") + " advised.")
        return " ".join(sentences)

    # assessment, flags, risk ------------------------------------------------------------------

    def assessment_observation(
        self, a: dict[str, Any], element: str, disorder: str, members: Sequence[str]
    ) -> dict[str, Any]:
        stage = a["stage"]
        status = self.req(a, "status", element, str)
        tr = self.req(a, "treatment_resistant", element, bool)
        n_failed = self.req(a, "failed_adequate_trials", element, int)
        comps: list[dict[str, Any]] = [
            self.comp("treatment-resistant", valueBoolean=tr),
            self.comp("assessment-status", valueCodeableConcept=self.cc("statuses", status, f"{element}.status")),
        ]
        if a.get("diagnosis") is not None:
            comps.append(self.comp("diagnosis-basis", valueCodeableConcept=self.cc(
                "diagnosis-bases", a["diagnosis"], f"{element}.diagnosis")))
        comps.append(self.comp("failed-adequate-trials", valueInteger=n_failed))
        for i, c in enumerate(self.opt_list(a, "failed_classes", element)):
            comps.append(self.comp("failed-class", valueCodeableConcept=self.cc(
                "treatment-classes", c, f"{element}.failed_classes[{i}]")))
        for i, c in enumerate(self.opt_list(a, "pseudo_resistance", element)):
            comps.append(self.comp("pseudo-resistance", valueCodeableConcept=self.cc(
                "findings", c, f"{element}.pseudo_resistance[{i}]")))
        for i, c in enumerate(self.opt_list(a, "caveats", element)):
            comps.append(self.comp("caveat", valueCodeableConcept=self.cc(
                "caveats", c, f"{element}.caveats[{i}]")))
        msm = a.get("msm")
        if isinstance(msm, dict):
            if msm.get("total") is not None:
                comps.append(self.comp("msm-total", valueInteger=self.req(msm, "total", f"{element}.msm", int)))
            else:
                absent = _cc("data-absent-unknown")
                absent["text"] = msm.get("reason") or ""
                comps.append(self.comp("msm-total", dataAbsentReason=absent))
            if msm.get("band") is not None:
                comps.append(self.comp("msm-band", valueCodeableConcept=self.cc(
                    "msm-bands", msm["band"], f"{element}.msm.band")))
            for dim in ("duration", "severity", "failures", "augmentation", "ect"):
                if msm.get(dim) is not None:
                    comps.append(self.comp(f"msm-{dim}", valueInteger=self.req(msm, dim, f"{element}.msm", int)))
        if a.get("inflammation") is not None:
            comps.append(self.comp("inflammation", valueCodeableConcept=self.cc(
                "inflammation-states", a["inflammation"], f"{element}.inflammation")))
        for i, s in enumerate(self.opt_list(a, "subtypes", element)):
            comps.append(self.comp("subtype", valueCodeableConcept=self.cc(
                "subtypes", s, f"{element}.subtypes[{i}]")))
        step = a.get("next_step")
        if isinstance(step, dict):
            if step.get("strategy") is not None:
                comps.append(self.comp("next-step-strategy", valueCodeableConcept=self.cc(
                    "strategies", step["strategy"], f"{element}.next_step.strategy", text=step.get("reason") or "")))
            for i, s in enumerate(step.get("also") or ()):
                comps.append(self.comp("next-step-also", valueCodeableConcept=self.cc(
                    "strategies", s, f"{element}.next_step.also[{i}]")))
            for s in step.get("suggestions") or ():
                comps.append(self.comp("suggested-agent", valueCodeableConcept={"text": str(s)}))
        for i, adv in enumerate(self.opt_list(a, "advisories", element)):
            comps.append(self.comp("advisory", valueCodeableConcept=self.cc(
                "advisories", adv, f"{element}.advisories[{i}]")))
        if a.get("episode_start") is not None:
            comps.append(self.comp("episode-start", valueDateTime=self._date(
                a["episode_start"], f"{element}.episode_start")))
        stage_text = f"{_STAGE_LABEL[disorder]} {stage}"
        refs = [r for r in self.evidence(a, element)]
        return self.finish(
            {
                "resourceType": "Observation",
                "identifier": [self.identifier(self.pid, disorder, "assessment")],
                "status": "final",
                "category": [_cc("observation-category-survey")],
                "code": self.cc("assessment-kinds", _ASSESSMENT_CODE[disorder], element),
                "subject": {"reference": self.patient},
                "effectiveDateTime": self.as_of,
                "issued": self.issued,
                "valueCodeableConcept": self.cc("stages", stage, f"{element}.stage", text=stage_text),
                "method": self.cc("methods", _METHOD[disorder], element),
                "device": {"reference": self.device_url},
                "hasMember": [{"reference": m} for m in members],
                "derivedFrom": self.derived_from(refs),
                "note": [{"text": self.note(a, element, disorder)}],
                "component": comps,
            }
        )

    def flag(self, disorder: str, code: dict[str, Any], category: str, detail_url: str) -> dict[str, Any]:
        return self.finish(
            {
                "resourceType": "Flag",
                "extension": [{"url": _tables().flag_detail, "valueReference": {"reference": detail_url}}],
                "identifier": [self.identifier(self.pid, disorder, "flag", code["coding"][0]["code"])],
                "status": "active",
                "category": [_cc(category)],
                "code": code,
                "subject": {"reference": self.patient},
                "period": {"start": self.as_of},
                "author": {"reference": self.device_url},
            }
        )

    def flags(self, a: dict[str, Any], element: str, disorder: str, obs_url: str) -> list[dict[str, Any]]:
        out = []
        stage_text = f"{_STAGE_LABEL[disorder]} {a['stage']}"
        if a.get("treatment_resistant"):
            c = self.concept("flags", _RESISTANCE_FLAG[disorder], element)
            status = a.get("status")
            extra = f" ({self.phrase('statuses', status, element)})" if status == "provisional" else ""
            code = self.cc("flags", c.code, element, text=f"{c.display} — {stage_text}{extra}")
            out.append(self.flag(disorder, code, "flag-category-clinical", obs_url))
        details = {f.get("code"): f.get("detail") for f in self.opt_list(a, "findings", element)
                   if isinstance(f, dict)}
        for i, finding in enumerate(self.opt_list(a, "pseudo_resistance", element)):
            c = self.concept("findings", finding, f"{element}.pseudo_resistance[{i}]")
            text = f"{c.display} — {details[finding]}" if details.get(finding) else c.display
            code = self.cc("findings", finding, element, text=text)
            category = "flag-category-safety" if finding in _SAFETY_FINDINGS else "flag-category-clinical"
            out.append(self.flag(disorder, code, category, obs_url))
        if a.get("inflammation") == "elevated":
            code = self.cc("flags", "inflammation-elevated", element)
            out.append(self.flag(disorder, code, "flag-category-clinical", obs_url))
        for i, adv in enumerate(self.opt_list(a, "advisories", element)):
            code = self.cc("advisories", adv, f"{element}.advisories[{i}]")
            out.append(self.flag(disorder, code, "flag-category-clinical", obs_url))
        return out

    def risk(self, a: dict[str, Any], element: str, disorder: str, obs_url: str) -> dict[str, Any]:
        lik = a.get("next_step_likelihood")
        if not isinstance(lik, dict):
            raise self.fail(f"{element}.next_step_likelihood", lik, "is required")
        p = self.opt_num(lik, "p_remission", f"{element}.next_step_likelihood")
        if p is None or not 0 <= p <= 1:
            raise self.fail(f"{element}.next_step_likelihood.p_remission", p, "must be a probability")
        steps = lik.get("prior_failed_steps")
        source = lik.get("source") or ""
        rationale = "Remission rate at the next standard step"
        if steps is not None:
            rationale += f" after {steps} failed step{'s' if steps != 1 else ''}"
        rationale += f" ({source})" if source else ""
        predictions = [{
            "outcome": self.cc("prediction-outcomes", "remission-next-step", element),
            "probabilityDecimal": p,
            "rationale": rationale,
        }]
        burden = self.opt_num(lik, "p_burden", f"{element}.next_step_likelihood")
        if burden is not None:
            predictions.append({
                "outcome": self.cc("prediction-outcomes", "treatment-burden", element),
                "probabilityDecimal": burden,
            })
        notes = []
        eu = self.opt_num(lik, "expected_utility", f"{element}.next_step_likelihood")
        if eu is not None:
            notes.append({"text": f"Expected utility of the next standard step: {eu:.3f}"
                          " (P(remission)·U(remission) − P(burden)·U(burden))."})
        advisories = self.opt_list(a, "advisories", element)
        condition = next(
            (r for r in (self.literal(ref, "RiskAssessment.condition")
                         for ref in sorted(self.opt_list(a, "diagnosis_evidence", element))) if r),
            None,
        )
        return self.finish(
            {
                "resourceType": "RiskAssessment",
                "identifier": [self.identifier(self.pid, disorder, "next-step-likelihood")],
                "status": "final",
                "method": self.cc("methods", "stard-next-step", element),
                "code": self.cc("assessment-kinds", "next-step-likelihood", element),
                "subject": {"reference": self.patient},
                "occurrenceDateTime": self.as_of,
                "condition": condition,
                "performer": {"reference": self.device_url},
                "basis": [{"reference": obs_url}],
                "prediction": predictions,
                "mitigation": "; ".join(
                    self.display("advisories", adv, f"{element}.advisories") for adv in advisories),
                "note": notes,
            }
        )

    def provenance(self, targets: list[str], refs: list[str]) -> dict[str, Any]:
        entities = []
        for ref in refs:
            what = self.literal(ref, "Provenance.entity.what") or {"display": ref}
            entities.append({"role": _tables().entity_role, "what": what})
        resource = self.finish(
            {
                "resourceType": "Provenance",
                "target": [{"reference": t} for t in targets],
                "recorded": self.issued,
                "activity": _cc("provenance-activity-create"),
                "agent": [{"type": _cc("provenance-agent-assembler"),
                           "who": {"reference": self.device_url}}],
                "entity": entities,
            }
        )
        digest = resource["meta"]["tag"][1]["code"]
        system = quote(self.settings.content_hash_system, safe=":/")
        return {
            "fullUrl": self.full_url("Provenance", f"{self.pid}/provenance/{digest}"),
            "resource": resource,
            "request": {"method": "POST", "url": "Provenance",
                        "ifNoneExist": f"_tag={system}|{digest}"},
        }


def build_transaction(
    result: dict[str, Any],
    settings: OutputSettings | None = None,
    *,
    issued: datetime | None = None,
) -> dict[str, Any]:
    """One patient's contract dict (schemas.dump_result) as a FHIR R4 transaction Bundle.

    `issued` stamps Observation.issued and Provenance.recorded (default: now, UTC). Raises
    InvalidResultError (or UndefinedCodeError) naming the element when the dict cannot be written.
    """
    settings = settings or OutputSettings()
    stamp = _instant(issued or datetime.now(UTC), "issued")
    w = _Writer(result, settings, stamp)
    assessments = result.get("assessments") or []
    if not isinstance(assessments, list):
        raise w.fail("assessments", assessments, "must be a list")
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": w.identifier(w.pid, "transaction"),
        "type": "transaction",
    }
    if not assessments:
        return bundle
    entries = [w.device()]
    refs: set[str] = set()
    seen: set[str] = set()
    for i, a in enumerate(assessments):
        element = f"assessments[{i}]"
        if not isinstance(a, dict):
            raise w.fail(element, a, "must be an object")
        if a.get("disorder") in seen:
            raise w.fail(f"{element}.disorder", a.get("disorder"), "is assessed twice")
        seen.add(a.get("disorder"))  # type: ignore[arg-type]
        entries += w.assessment_entries(a, element)
        refs.update(w.evidence(a, element))
    entries.append(w.provenance([e["fullUrl"] for e in entries[1:]], sorted(refs)))
    bundle["entry"] = entries
    return bundle


def merge_transactions(bundles: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several patients' transactions as one: entries in order, the shared Device entry once
    (entries with the same fullUrl are the same resource; a transaction may not repeat one)."""
    seen: set[str] = set()
    entries = []
    for bundle in bundles:
        for entry in bundle.get("entry", ()):
            if entry["fullUrl"] in seen:
                continue
            seen.add(entry["fullUrl"])
            entries.append(entry)
    return _prune({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def output_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a bundle built here, in entry order."""
    return [e["resource"] for e in bundle.get("entry", ())]


def _patient_id(bundle: dict[str, Any]) -> str:
    ident = bundle.get("identifier") or {}
    value = str(ident.get("value", ""))
    if not value.endswith("/transaction"):
        raise ValueError("bundle was not built by build_transaction (no '<patient>/transaction' identifier)")
    return value[: -len("/transaction")]


def _identifier_values(resource: dict[str, Any], system: str | None = None) -> list[str]:
    return [
        str(i.get("value"))
        for i in resource.get("identifier") or ()
        if isinstance(i, dict) and (system is None or i.get("system") == system)
    ]


def plan_flag_deactivations(
    existing_flags: list[dict[str, Any]], bundle: dict[str, Any], when: datetime
) -> list[dict[str, Any]]:
    """The server's active fhirtrd Flags for this bundle's patient that the bundle no longer
    produces, returned as updated copies: status inactive, period.end = `when`, content hash
    renewed, id kept (PUT Flag/<id>). Pure: reads nothing, changes none of its arguments."""
    end = _instant(when, "when")
    pid = _patient_id(bundle)
    system = str(bundle["identifier"]["system"])
    produced = {
        value
        for r in output_resources(bundle)
        if r.get("resourceType") == "Flag"
        for value in _identifier_values(r, system)
    }
    out = []
    for flag in existing_flags:
        if flag.get("resourceType") != "Flag" or flag.get("status") != "active":
            continue
        if not is_fhirtrd_output(flag):
            continue
        values = _identifier_values(flag, system)
        if not values or not all(v.startswith(f"{pid}/") for v in values):
            continue
        if any(v in produced for v in values):
            continue
        updated = copy.deepcopy(flag)
        updated["status"] = "inactive"
        period = dict(updated.get("period") or {})
        start = str(period.get("start", ""))
        period["end"] = start if start and start[:10] > end[:10] else end
        updated["period"] = period
        _retag(updated)
        out.append(updated)
    return sorted(out, key=lambda f: (_identifier_values(f, system), str(f.get("id", ""))))


def _retag(resource: dict[str, Any]) -> None:
    for tag in resource.get("meta", {}).get("tag", ()):
        if str(tag.get("system", "")).endswith("/CodeSystem/content-hash"):
            tag["code"] = content_hash(resource)


def iter_bundles(
    results: Iterable[dict[str, Any]],
    settings: OutputSettings | None = None,
    *,
    issued: datetime | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(patient id, transaction Bundle) per contract dict; one `issued` stamp for the whole run."""
    stamp = issued or datetime.now(UTC)
    for result in results:
        bundle = build_transaction(result, settings, issued=stamp)
        yield _patient_id(bundle), bundle


def write_bundles(
    results: Iterable[dict[str, Any]],
    out_dir: Path | None,
    stream: IO[str] | None,
    settings: OutputSettings | None = None,
    *,
    issued: datetime | None = None,
) -> list[str]:
    """Write a Bundle per patient to `<out_dir>/<patient id>.json` (indented) when `out_dir` is
    given, else to `stream` as NDJSON (one Bundle a line). Returns the patient ids written."""
    if out_dir is None and stream is None:
        raise ValueError("write_bundles needs out_dir or stream")
    written = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for pid, bundle in iter_bundles(results, settings, issued=issued):
        if out_dir is not None:
            text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
            partial = out_dir / f".{pid}.json.partial"  # written whole, then renamed: never half a Bundle
            partial.write_text(text, encoding="utf-8")
            partial.replace(out_dir / f"{pid}.json")
        elif stream is not None:
            stream.write(json.dumps(bundle, ensure_ascii=False, separators=(",", ":")) + "\n")
        written.append(pid)
    return written
