"""DeviceRequest, DeviceUseStatement and Device resources → ProcedureEvent("cpap") (clinical-spec §6 v2)."""

from __future__ import annotations

from typing import Any

from fhirtrd.domain.model import ProcedureEvent
from fhirtrd.fhir.inbound.common import (IN_USE, AdapterBase, RecordBuilder, _codings, _obj, _ref, parse_date,
                                         reference_id)

#: statuses under which a device was never (or not yet) in the patient's hands
_NOT_REQUESTED = frozenset({"draft", "revoked", "entered-in-error"})
_NOT_ORDERED_INTENTS = frozenset({"proposal", "plan"})
_NOT_USED = frozenset({"intended", "entered-in-error"})


class DevicesMixin(AdapterBase):
    """Treatment devices (CPAP) from orders, use statements and the patient's own Device resources."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.devices: dict[str, str | None] = {}  # Device/id → device concept (None: not a mapped device)

    def device_concept(self, concept: Any, element: str) -> str | None:
        """The concept (cpap) of a device type CodeableConcept, from mappings/devices.csv."""
        for c in _codings(concept, element):
            hit = self.t.devices.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if hit:
                return hit
        return None

    def _referenced_device(self, ref: Any, aliases: dict[str, str]) -> tuple[str | None, bool]:
        """(concept, known) of a Device reference: known is False while the Device has not been read."""
        did = reference_id(ref, "Device", aliases)
        if did is None:
            return None, True
        key = f"Device/{did}"
        return self.devices.get(key), key in self.devices

    def _device(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str]) -> None:
        """A Device assigned to the patient: its type names the device; an active one is in use at the as-of date."""
        concept = self.device_concept(r.get("type"), "type")
        if isinstance(r.get("id"), str):
            self.devices[f"Device/{r['id']}"] = concept
        if concept is None or r.get("status") not in (None, "active") or not self._valid(b, r, source):
            return
        b.add_procedure(ProcedureEvent(concept=concept, when=IN_USE, ref=_ref(r)))

    def _device_request(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str],
                        *, final: bool = False) -> None:
        """An order for a CPAP device (codeCodeableConcept, or codeReference to a Device)."""
        if "codeReference" in r:
            concept, known = self._referenced_device(r.get("codeReference"), aliases)
            if not known and not final:
                b.pending.append((r, source))
                return
        else:
            concept = self.device_concept(r.get("codeCodeableConcept"), "codeCodeableConcept")
        if (concept is None or r.get("status") in _NOT_REQUESTED or r.get("intent") in _NOT_ORDERED_INTENTS
                or not self._valid(b, r, source)):
            return
        when = (parse_date(r.get("authoredOn")) or parse_date(r.get("occurrenceDateTime"))
                or parse_date(_obj(r, "occurrencePeriod").get("start")))
        if when is None:
            b.warn(r, "device request has no authoredOn or occurrence date; not used",
                   element="DeviceRequest.authoredOn", source=source)
            return
        reasons, refs = self._reasons(r, aliases)
        b.add_procedure(ProcedureEvent(concept=concept, when=when, ref=_ref(r), reasons=reasons), refs)

    def _device_use(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str],
                    *, final: bool = False) -> None:
        """The patient uses a device: the referenced Device's type says which."""
        concept, known = self._referenced_device(r.get("device"), aliases)
        if not known and not final:
            b.pending.append((r, source))
            return
        if concept is None or r.get("status") in _NOT_USED or not self._valid(b, r, source):
            return
        when = (parse_date(r.get("timingDateTime")) or parse_date(_obj(r, "timingPeriod").get("start"))
                or parse_date(r.get("recordedOn")))
        if when is None:
            b.warn(r, "device use statement has no timing or recordedOn date; not used",
                   element="DeviceUseStatement.timing[x]", source=source)
            return
        reasons, refs = self._reasons(r, aliases)
        b.add_procedure(ProcedureEvent(concept=concept, when=when, ref=_ref(r), reasons=reasons), refs)
