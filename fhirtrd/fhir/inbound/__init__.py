"""FHIR R4 resources → the classifier's facts, one patient at a time, reporting what it cannot use.

Why this package is careful:
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

One module per resource family (conditions, observations, procedures, devices, medications, intolerance);
`Adapter` joins them behind one dispatch table.
"""

from fhirtrd.fhir.inbound.adapter import Adapter
from fhirtrd.fhir.inbound.common import (
    MED_TYPES,
    RELEVANT,
    RecordBuilder,
    parse_date,
    reference_id,
    subject_of,
    validation_error,
)

__all__ = ["MED_TYPES", "RELEVANT", "Adapter", "RecordBuilder", "parse_date", "reference_id", "subject_of",
           "validation_error"]
