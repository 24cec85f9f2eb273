"""The exception tree of fhirtrd.

    FhirtrdError                  root: every error fhirtrd raises on purpose
    ├── TerminologyError          a mappings/ file or row is wrong (names file and row)
    ├── InputError                an input could not be read at all (names the path)
    ├── OutboundError             an assessment cannot be written as FHIR (fhirtrd.fhir.outbound_errors)
    ├── ApiError                  an HTTP request is answered with an error (fhirtrd.api.errors)
    └── ServerError               talking to a FHIR server failed (see fhirtrd.server.errors)

Bad data inside a readable input is not an exception: it becomes a DataWarning on the patient.
"""

from __future__ import annotations


class FhirtrdError(Exception):
    """Root of every error fhirtrd raises on purpose."""


class TerminologyError(FhirtrdError):
    """A mapping table is invalid; `path` and `row` say where."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.row = row


class InputError(FhirtrdError):
    """An input file or document could not be read at all."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ServerError(FhirtrdError):
    """A FHIR server request failed; subclasses live in fhirtrd.server.errors."""
