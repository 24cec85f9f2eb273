"""The HTTP door's errors, and how each door answers them (OperationOutcome or CDS Hooks JSON).

Exception tree (one root, `ApiError`, under `fhirtrd.errors.FhirtrdError`)::

    ApiError
    ├── ConfigError            bad service configuration; raised by create_app at start-up
    └── HttpError              an answer to one request, with status, code and location
        ├── BadRequest            400  malformed JSON, wrong shape, bad query parameter
        ├── Unauthorized          401  missing, invalid, expired or replayed credentials
        ├── NotFound              404  unknown route, CDS service or patient
        ├── NotAcceptable         406  Accept names no representation we produce
        ├── PayloadTooLarge       413  body over the configured limit
        ├── UnsupportedMediaType  415  body is not JSON
        ├── PreconditionFailed    412  CDS Hooks: the FHIR data needed cannot be obtained
        ├── NotConfigured         501  the operation needs configuration that is absent
        └── UpstreamError         502  the configured FHIR server failed

FHIR endpoints answer an OperationOutcome (issue.code from the FHIR IssueType value set,
issue.expression naming the entry and element); CDS Hooks endpoints answer
`{"error": <code>, "message": <text>}` with the status the CDS Hooks spec expects (412 for data
that cannot be obtained).
"""

from __future__ import annotations

from typing import Any

from fhirtrd.errors import FhirtrdError


class ApiError(FhirtrdError):
    """Root of every error the HTTP door raises."""


class ConfigError(ApiError):
    """The service configuration is invalid: `key` names the setting at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration {key}: {message}")
        self.key = key
        self.message = message


class HttpError(ApiError):
    """An error answered to the client; `expression` names where in the input it is."""

    status: int = 400
    code: str = "invalid"  # FHIR IssueType (http://hl7.org/fhir/issue-type)

    def __init__(
        self,
        message: str,
        *,
        expression: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(HttpError):
    status = 400
    code = "invalid"


class Unauthorized(HttpError):
    status = 401
    code = "login"


class NotFound(HttpError):
    status = 404
    code = "not-found"


class NotAcceptable(HttpError):
    status = 406
    code = "not-supported"


class PreconditionFailed(HttpError):
    status = 412
    code = "not-found"


class PayloadTooLarge(HttpError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(HttpError):
    status = 415
    code = "not-supported"


class NotConfigured(HttpError):
    status = 501
    code = "not-supported"


class UpstreamError(HttpError):
    status = 502
    code = "transient"


def operation_outcome(
    message: str, *, code: str, severity: str = "error", expression: str | None = None
) -> dict[str, Any]:
    """A one-issue OperationOutcome."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def cds_error(code: str, message: str) -> dict[str, Any]:
    """The JSON body of a CDS Hooks error answer."""
    return {"error": code, "message": message}
