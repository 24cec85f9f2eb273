"""Condition resources → ConditionFact."""

from __future__ import annotations

from typing import Any


from fhirtrd.domain.model import (
    ConditionFact,
)
from fhirtrd.fhir.inbound.common import (
    AdapterBase,
    RecordBuilder,
    _codings,
    _obj,
    _ref,
    _texts,
    parse_date,
)


class ConditionsMixin(AdapterBase):
    """Condition resources → ConditionFact."""

    def _condition(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        concepts: set[str] = set()
        for c in _codings(r.get("code"), "code"):
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
                concepts |= self.t.condition_concepts(c["system"], c["code"])
        reasons = set(concepts)
        for c in _codings(r.get("code"), "code"):
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
                reasons |= self.t.indication_concepts(c["system"], c["code"])
        rid = r.get("id")
        if reasons and isinstance(rid, str):  # what a medication's reasonReference to it means
            b.condition_reasons[f"Condition/{rid}"] = frozenset(reasons)
        if not concepts or not self._valid(b, r, source):
            return
        verification = {c.get("code") for c in _codings(r.get("verificationStatus"), "verificationStatus")}
        if verification & {"refuted", "entered-in-error"}:
            return
        clinical = {c.get("code") for c in _codings(r.get("clinicalStatus"), "clinicalStatus")}
        abatement = parse_date(r.get("abatementDateTime"), end=True) or parse_date(
            _obj(r, "abatementPeriod").get("end"), end=True)
        active = bool(clinical & {"active", "recurrence", "relapse"}) if clinical else abatement is None
        onset = (parse_date(r.get("onsetDateTime")) or parse_date(_obj(r, "onsetPeriod").get("start"))
                 or parse_date(r.get("recordedDate")))
        b.conditions.append(ConditionFact(concepts=frozenset(concepts), onset=onset, abatement=abatement,
                                          active=active, ref=_ref(r), display=(_texts(r.get("code"), "code") or [""])[0]))
