"""Observation resources → score and lab Measurements."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtrd.fhir import elements
from fhirtrd.domain.model import (
    Measurement,
)
from fhirtrd.fhir.inbound.common import (
    AdapterBase,
    RecordBuilder,
    _codings,
    _obj,
    _num,
    _ref,
    parse_date,
    parse_instant,
)


VERIFIED = frozenset({"final", "amended", "corrected"})


class ObservationsMixin(AdapterBase):
    """Observation resources → score and lab Measurements."""

    def observation_hits(self, r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """(concept, value holder, element) for the code and each component the mappings know."""
        hits: list[tuple[str, dict[str, Any], str]] = []
        for c in _codings(r.get("code"), "code"):
            oc = self.t.observations.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if oc is not None:
                hits.append((oc.concept, r, "Observation.value"))
                break
        components = r.get("component")
        if isinstance(components, list):
            for i, comp in enumerate(components):
                if not isinstance(comp, dict):
                    continue
                for c in _codings(comp.get("code"), f"component[{i}].code"):
                    oc = self.t.observations.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
                    if oc is not None:
                        hits.append((oc.concept, comp, f"Observation.component[{i}].value"))
                        break
        return hits

    def _observation(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        hits = self.observation_hits(r)
        status = r.get("status") if isinstance(r.get("status"), str) else None
        if not hits or status == "cancelled":
            return
        if status not in VERIFIED:  # clinical-spec §3 v2: preliminary, registered, unknown… are not verified
            b.warn(r, f"status {str(status)[:40]!r} is not a verified result (final, amended, corrected); not used",
                   element="Observation.status", source=source, code="unverified-result")
            return
        period = _obj(r, "effectivePeriod")
        instant = (parse_instant(r.get("effectiveDateTime")) or parse_instant(period.get("end"))
                   or parse_instant(period.get("start")) or parse_instant(r.get("effectiveInstant")))
        issued = parse_instant(r.get("issued"))
        when = (parse_date(r.get("effectiveDateTime")) or parse_date(_obj(r, "effectivePeriod").get("start"))
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
            found.append(Measurement(concept=concept, value=value, when=when, ref=_ref(r), instant=instant,
                                     issued=issued))
        if not found:
            return
        if b.needs_scores():
            if self._valid(b, r, source):
                b.measurements.extend(found)
        else:  # kept compact: most of these belong to patients who never need them
            b.deferred.append((orjson.dumps(r), source, found))


def _value(holder: dict[str, Any], answers: dict[tuple[str, str], float]) -> tuple[float | None, str | None]:
    """A numeric value: integer, quantity, decimal, a numeric string, or a scored answer code."""
    if "valueInteger" in holder:
        return _num(holder["valueInteger"], "valueInteger"), None
    if isinstance(holder.get("valueString"), str):
        try:
            return float(holder["valueString"].strip()), None
        except ValueError:
            return None, None
    for c in _codings(holder.get("valueCodeableConcept"), "valueCodeableConcept"):
        for ext in elements.objects(c.get("extension"), "valueCodeableConcept.coding.extension"):
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith(("/ordinalValue", "/itemWeight")):
                return _num(ext.get("valueDecimal"), "valueCodeableConcept.coding.extension.valueDecimal"), None
        hit = answers.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
        if hit is not None:
            return hit, None
    q = holder.get("valueQuantity")
    if isinstance(q, dict):
        unit = q.get("code") or q.get("unit")
        return _num(q.get("value"), "valueQuantity.value"), unit if isinstance(unit, str) else None
    if "valueDecimal" in holder:
        return _num(holder["valueDecimal"], "valueDecimal"), None
    return None, None

