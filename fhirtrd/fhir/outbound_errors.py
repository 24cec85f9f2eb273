"""Errors of the FHIR write-back (outbound) area.

Tree:

    OutboundError                   root of the write-back area
    ├── InvalidResultError          the contract dict cannot be written: names patient, element, value
    │   └── UndefinedCodeError      a value is not a code of the fhirtrd CodeSystem
    └── CodeSystemError             a CodeSystem file in mappings/fhir is malformed (names file, code)
"""

from __future__ import annotations

from fhirtrd.errors import FhirtrdError


class OutboundError(FhirtrdError):
    """Root of every error the write-back raises."""


class InvalidResultError(OutboundError):
    """One patient's contract dict cannot be turned into FHIR.

    `patient` is the contract's patient reference (or None when that is what is missing),
    `element` the path inside the contract ("assessments[0].trials[1].start"), `value` the bad value.
    """

    def __init__(self, patient: str | None, element: str, value: object, problem: str) -> None:
        self.patient = patient
        self.element = element
        self.value = value
        self.problem = problem
        where = f"{patient or '<no patient>'} {element}"
        super().__init__(f"{where}: {problem} (value {value!r})")


class UndefinedCodeError(InvalidResultError):
    """A contract value the outputs would use as a code is not defined in the fhirtrd CodeSystem."""

    def __init__(self, patient: str | None, element: str, value: object, group: str) -> None:
        self.group = group
        super().__init__(
            patient, element, value, f"not a code of the fhirtrd CodeSystem group {group!r}"
        )


class CodeSystemError(OutboundError):
    """A CodeSystem in mappings/fhir breaks a rule (duplicate code, unknown group, empty text)."""

    def __init__(self, file: str, code: str | None, problem: str) -> None:
        self.file = file
        self.code = code
        self.problem = problem
        super().__init__(f"{file}: {'code ' + repr(code) + ': ' if code else ''}{problem}")
