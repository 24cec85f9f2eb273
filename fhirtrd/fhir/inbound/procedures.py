"""Procedure resources → ProcedureEvent (ECT, rTMS, psychotherapy, CPAP...)."""

from __future__ import annotations

from typing import Any


from fhirtrd.fhir import elements
from fhirtrd.domain.model import (
    ProcedureEvent,
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


class ProceduresMixin(AdapterBase):
    """Procedure resources → ProcedureEvent (ECT, rTMS, psychotherapy, CPAP...)."""

    def _procedure(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        concept = None
        for c in _codings(r.get("code"), "code"):
            concept = self.t.procedures.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if concept:
                break
        if concept is None or r.get("status") in ("not-done", "preparation") or not self._valid(b, r, source):
            return
        when = parse_date(r.get("performedDateTime")) or parse_date(_obj(r, "performedPeriod").get("start"))
        if when is None:
            b.warn(r, "procedure has no performed date; not used", element="Procedure.performed[x]", source=source)
            return
        laterality = None
        sites = r.get("bodySite")
        for site in sites if isinstance(sites, list) else []:
            for c in _codings(site, "bodySite"):
                laterality = laterality or self.t.laterality.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
        if laterality is None:
            words = " ".join(_texts(r.get("code"), "code")).lower()
            laterality = "bilateral" if "bilateral" in words else "unilateral" if "unilateral" in words else None
        reasons, refs = self._reasons(r, aliases)
        b.add_procedure(ProcedureEvent(concept=concept, when=when, ref=_ref(r), laterality=laterality, reasons=reasons),
                        refs)

    def _encounter(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        """A psychotherapy (or ECT, rTMS) session recorded as an Encounter: `type` or `serviceType` (§2.1 v2)."""
        concept = None
        concepts: list[tuple[Any, str]] = [(t, f"type[{i}]") for i, t in enumerate(elements.objects(r.get("type"), "type"))]
        concepts.append((r.get("serviceType"), "serviceType"))
        for cc, element in concepts:
            for c in _codings(cc, element):
                concept = concept or self.t.procedures.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
        status = r.get("status") if isinstance(r.get("status"), str) else None
        if concept is None or status in ("planned", "cancelled", "entered-in-error") or not self._valid(b, r, source):
            return
        when = parse_date(_obj(r, "period").get("start"))
        if when is None:
            b.warn(r, "encounter has no period.start; not used", element="Encounter.period", source=source)
            return
        reasons, refs = self._reasons(r, aliases, diagnosis=True)
        b.add_procedure(ProcedureEvent(concept=concept, when=when, ref=_ref(r), reasons=reasons), refs)
