"""AllergyIntolerance and AdverseEvent → IntoleranceFact."""

from __future__ import annotations

from typing import Any


from fhirtrd.fhir import elements
from fhirtrd.domain.model import (
    IntoleranceFact,
)
from fhirtrd.fhir.inbound.common import (
    RecordBuilder,
    _codings,
    _ref,
    parse_date,
)
from fhirtrd.fhir.inbound.medications import MedicationsMixin


class IntoleranceMixin(MedicationsMixin):
    """AllergyIntolerance and AdverseEvent → IntoleranceFact."""

    def _allergy(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        concepts = [r.get("code")] + [x.get("substance") for x in elements.objects(r.get("reaction"), "reaction")]
        ingredient = None
        for concept in concepts:
            hit, _, _ = self.resolve(concept, None, {}, aliases) if concept else (None, None, False)
            if hit:
                ingredient = hit.ingredient
                break
        if ingredient is None or not self._valid(b, r, source):
            return
        verification = {c.get("code") for c in _codings(r.get("verificationStatus"), "verificationStatus")}
        if verification & {"refuted", "entered-in-error"}:
            return
        if r.get("type") == "allergy":
            return  # clinical-spec §2.2 counts intolerance; a true allergy is not a trial outcome
        when = parse_date(r.get("onsetDateTime")) or parse_date(r.get("recordedDate"))
        b.intolerances.append(IntoleranceFact(ingredient=ingredient, when=when, ref=_ref(r)))

    def _adverse_event(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        ingredient = None
        for entity in elements.objects(r.get("suspectEntity"), "suspectEntity"):
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

