"""Procedure resources → ProcedureEvent (ECT, rTMS, psychotherapy, CPAP...)."""

from __future__ import annotations

from typing import Any


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
        b.procedures.append(ProcedureEvent(concept=concept, when=when, ref=_ref(r), laterality=laterality))
