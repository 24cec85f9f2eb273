"""Observation resources → score and lab Measurements."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtrd.fhir import elements
from fhirtrd.domain.model import (
    Measurement,
)
from fhirtrd.terminology import Panel
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
#: the element of a hit whose value is the sum of a panel's item components (clinical-spec §3 v2)
PANEL_ITEMS = "Observation.component"


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
        panel = self._panel(r)
        if panel is not None and not any(concept == panel.instrument for concept, _, _ in hits):
            hits.append((panel.instrument, r, PANEL_ITEMS))  # no total component: the sum of the items
        return hits

    def _panel(self, r: dict[str, Any]) -> Panel | None:
        for c in _codings(r.get("code"), "code"):
            panel = self.t.panels.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if panel is not None:
                return panel
        return None

    def _panel_sum(self, r: dict[str, Any], panel: Panel) -> tuple[float | None, str]:
        """The sum of a panel's item components when every item is scored (Kroenke 2001), else why not."""
        scores: dict[tuple[str, str], float] = {}
        for i, comp in enumerate(elements.objects(r.get("component"), "component")):
            for c in _codings(comp.get("code"), f"component[{i}].code"):
                key = (c.get("system"), c.get("code"))
                if key in panel.items and key not in scores:
                    value, _ = _value(comp, self.t.answer_scores)
                    if value is not None and 0 <= value <= panel.items[key]:
                        scores[key] = value
        if len(scores) < len(panel.items):
            return None, (f"{panel.instrument} panel has no total component and {len(scores)} of "
                          f"{len(panel.items)} items scored; not used as a score")
        return sum(scores.values()), ""

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
            panel = self._panel(r) if element == PANEL_ITEMS else None
            if panel is not None:
                value, problem = self._panel_sum(r, panel)
                unit = None
                if value is None:
                    b.warn(r, problem, element=element, source=source, code="incomplete-panel")
                    continue
            else:
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


    def _questionnaire_response(self, b: RecordBuilder, r: dict[str, Any], source: str,
                                aliases: dict[str, str]) -> None:
        """A completed PHQ-9/GAD-7… QuestionnaireResponse → its total and item scores (clinical-spec §3 v2)."""
        url = r.get("questionnaire")
        mapped = self.t.questionnaires.get(url.split("|", 1)[0]) if isinstance(url, str) else None
        status = r.get("status") if isinstance(r.get("status"), str) else None
        if mapped is None or status not in ("completed", "amended"):
            return
        instrument, items = mapped
        when = parse_date(r.get("authored"))
        if when is None:
            b.warn(r, "questionnaire response has no authored date; not used", element="QuestionnaireResponse.authored",
                   source=source)
            return
        total: float | None = None
        scored: list[float] = []
        found: list[Measurement] = []
        for link, answer in _answers(r.get("item"), "item"):
            code = link.rsplit("/", 1)[-1]
            oc = self.t.observations.get((LOINC, code))
            value, _ = _value(answer, self.t.answer_scores)
            if oc is not None and oc.concept == instrument:
                total = value
                continue
            if value is not None and _scored_answer(answer, self.t.answer_scores):
                scored.append(value)
            if oc is not None and value is not None and oc.concept in self.t.rules.instruments:
                found.append(Measurement(concept=oc.concept, value=value, when=when, ref=_ref(r),
                                         instant=parse_instant(r.get("authored"))))
        if total is None and len(scored) == items:
            total = sum(scored)  # every item answered: the total is their sum
        if total is None:
            b.warn(r, f"{instrument} questionnaire has no total and not every item is answered; not used as a score",
                   element="QuestionnaireResponse.item", source=source)
        else:
            spec = self.t.rules.instruments[instrument]
            if spec.low <= total <= spec.high:
                found.append(Measurement(concept=instrument, value=total, when=when, ref=_ref(r),
                                         instant=parse_instant(r.get("authored"))))
            else:
                b.warn(r, f"{instrument} total {total:g} is outside the scale's range; not used",
                       element="QuestionnaireResponse.item", source=source, code="value-out-of-range")
        if not found:
            return
        if b.needs_scores():
            if self._valid(b, r, source):
                b.measurements.extend(found)
        else:
            b.deferred.append((orjson.dumps(r), source, found))


def _value(holder: dict[str, Any], answers: dict[tuple[str, str], float]) -> tuple[float | None, str | None]:
    """A numeric value: integer, quantity, decimal, a numeric string, or a scored answer code (valueCodeableConcept
    of an Observation, valueCoding of a QuestionnaireResponse answer)."""
    if "valueInteger" in holder:
        return _num(holder["valueInteger"], "valueInteger"), None
    if isinstance(holder.get("valueString"), str):
        try:
            return _num(float(holder["valueString"].strip()), "valueString"), None
        except ValueError:
            return None, None
    codings = _codings(holder.get("valueCodeableConcept"), "valueCodeableConcept")
    if "valueCoding" in holder:  # a QuestionnaireResponse answer
        codings += _codings({"coding": [holder["valueCoding"]]}, "valueCoding")
    for c in codings:
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


LOINC = "http://loinc.org"


def _answers(items: Any, element: str) -> list[tuple[str, dict[str, Any]]]:
    """(linkId, first answer) of every answered item, nested items included."""
    out: list[tuple[str, dict[str, Any]]] = []
    stack = [(items, element)]
    while stack:
        value, where = stack.pop()
        for i, item in enumerate(elements.objects(value, where)):
            link = item.get("linkId")
            answers = elements.objects(item.get("answer"), f"{where}[{i}].answer")
            if isinstance(link, str) and answers:
                out.append((link, answers[0]))
            stack.append((item.get("item"), f"{where}[{i}].item"))
            for a in answers:
                stack.append((a.get("item"), f"{where}[{i}].answer.item"))
    return out


def _scored_answer(answer: dict[str, Any], answers: dict[tuple[str, str], float]) -> bool:
    """True when an answer is a scored item answer: a mapped answer code, an ordinal value, or an integer."""
    coding = answer.get("valueCoding")
    if isinstance(coding, dict):
        return (coding.get("system"), coding.get("code")) in answers or any(
            isinstance(e, dict) and str(e.get("url", "")).endswith(("/ordinalValue", "/itemWeight"))
            for e in elements.objects(coding.get("extension"), "valueCoding.extension"))
    return isinstance(answer.get("valueInteger"), int)

