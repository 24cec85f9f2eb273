"""The inbound adapter: one dispatch table over the resource-family readers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from fhirtrd.fhir import elements

from fhirtrd.fhir.inbound.common import RecordBuilder
from fhirtrd.fhir.inbound.conditions import ConditionsMixin
from fhirtrd.fhir.inbound.devices import DevicesMixin
from fhirtrd.fhir.inbound.intolerance import IntoleranceMixin
from fhirtrd.fhir.inbound.observations import ObservationsMixin
from fhirtrd.fhir.inbound.procedures import ProceduresMixin
from fhirtrd.fhir.outbound import is_fhirtrd_output
from fhirtrd.terminology import Terminology


class Adapter(ConditionsMixin, ObservationsMixin, ProceduresMixin, IntoleranceMixin, DevicesMixin):
    """Turns resources into facts on per-patient builders; holds the Medication index for references."""

    def __init__(self, terminology: Terminology, *, validate: bool = True) -> None:
        super().__init__(terminology, validate=validate)
        self.handlers: dict[str, Callable[[RecordBuilder, dict[str, Any], str, dict[str, str]], None]] = {
            "Condition": self._condition, "Observation": self._observation, "Procedure": self._procedure,
            "Encounter": self._encounter, "QuestionnaireResponse": self._questionnaire_response,
            "MedicationStatement": self._medication_use, "MedicationRequest": self._medication_use,
            "MedicationDispense": self._medication_use, "MedicationAdministration": self._medication_use,
            "AllergyIntolerance": self._allergy, "AdverseEvent": self._adverse_event,
            "Device": self._device, "DeviceRequest": self._device_request, "DeviceUseStatement": self._device_use,
        }

    # -- dispatch --------------------------------------------------------------------------------

    def add(self, builder: RecordBuilder, resource: dict[str, Any], source: str,
            aliases: dict[str, str]) -> None:
        """Read one resource of `builder`'s patient (relevance is checked before validation)."""
        handler = self.handlers.get(resource["resourceType"])
        if handler is None or resource.get("status") == "entered-in-error" or is_fhirtrd_output(resource):
            return
        self.read(builder, resource, source, lambda: handler(builder, resource, source, aliases))

    def read(self, builder: RecordBuilder, resource: dict[str, Any], source: str, step: Callable[[], None]) -> None:
        """Run one resource's reader; each element of the wrong type becomes a warning naming it."""
        rtype = resource["resourceType"]
        with elements.collecting() as problems:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one resource never sinks the patient; the fuzz test keeps this empty
                builder.warn(resource, f"{rtype} could not be read ({type(exc).__name__}); skipped", source=source,
                             element=rtype, code="unreadable-resource")
        for element, message in problems:
            builder.warn(resource, f"{element} {message}; not used", element=f"{rtype}.{element}", source=source,
                         code="unusable-element")

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
        for resource, source in pending:  # medication and device references seen before their resource
            step = {"DeviceUseStatement": self._device_use, "DeviceRequest": self._device_request}.get(
                resource["resourceType"], self._medication_use)
            self.read(builder, resource, source, partial(step, builder, resource, source, {}, final=True))
        deferred, builder.deferred = builder.deferred, []
        if not builder.needs_scores():
            return
        for raw, source, measurements in deferred:
            if self._valid(builder, orjson.loads(raw), source):
                builder.measurements.extend(measurements)
