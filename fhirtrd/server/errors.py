"""Errors of the FHIR server client and the batch sync.

The tree (catch the narrowest that fits; everything derives from ``ServerError``)::

    ServerError                         root of the server area (fhirtrd.errors.ServerError)
    ├── ServerConfigError               bad --server URL, unreadable key file, bad auth options
    ├── StateFileError                  the state file cannot be read, parsed or written
    ├── TransportError                  no HTTP answer at all (temporary: retried)
    │   ├── ServerUnreachable           connection refused / DNS / TLS / connection reset
    │   └── ServerTimeout               connect or read timeout
    ├── AuthError                       the token endpoint refused us, or 401/403 after a renewal
    ├── ResponseError                   the server answered with an error status
    │   ├── TemporaryServerError        408, 429, 500, 502, 503, 504 (retried with back-off)
    │   ├── NotFound                    404, 410
    │   ├── PreconditionFailed          412 (e.g. a conditional update matched several resources)
    │   └── RequestRejected             any other 4xx (400, 409, 422, ...): the request is wrong
    ├── UnexpectedResponse              2xx whose body is not the FHIR JSON we asked for
    └── OutputConflict                  the server holds several fhirtrd outputs with one identifier

``ResponseError`` carries the method, URL, status, the parsed OperationOutcome (if any) and its
diagnostics, so a handler can report *why* a server said no without re-parsing the response.
``is_temporary`` tells the retry loop and the sync which failures are worth another try.
"""

from __future__ import annotations

from typing import Any

from fhirtrd.errors import ServerError  # the root lives in fhirtrd.errors

__all__ = [
    "AuthError", "NotFound", "OutputConflict", "PreconditionFailed", "RequestRejected", "ResponseError",
    "ServerConfigError", "ServerError", "ServerTimeout", "ServerUnreachable", "StateFileError",
    "TemporaryServerError", "TransportError", "UnexpectedResponse", "outcome_messages", "response_error",
]

TEMPORARY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


class ServerConfigError(ServerError):
    """The sync was configured wrongly (URL, auth options, key file)."""


class StateFileError(ServerError):
    """The sync state file cannot be read, parsed or written."""


class TransportError(ServerError):
    """The request got no HTTP answer."""

    is_temporary = True

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ServerUnreachable(TransportError):
    """Connection refused, reset, name resolution or TLS failure."""


class ServerTimeout(TransportError):
    """Connect or read timeout."""


class AuthError(ServerError):
    """Authentication failed: token endpoint error, or 401/403 after one token renewal."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


def outcome_messages(outcome: dict[str, Any] | None) -> list[str]:
    """The human-readable lines of an OperationOutcome (diagnostics, else details.text)."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    lines: list[str] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
        if text:
            severity = issue.get("severity", "error")
            where = ", ".join(issue.get("expression") or issue.get("location") or [])
            lines.append(f"{severity}: {text}" + (f" (at {where})" if where else ""))
    return lines


class ResponseError(ServerError):
    """The server answered with an error status."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        status: int,
        outcome: dict[str, Any] | None = None,
        body_excerpt: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.outcome = outcome
        self.messages = outcome_messages(outcome)
        self.retry_after = retry_after
        detail = "; ".join(self.messages) or body_excerpt.strip()[:300] or "no details"
        super().__init__(f"{method} {url} -> HTTP {status}: {detail}")

    @property
    def is_temporary(self) -> bool:
        return self.status in TEMPORARY_STATUSES


class TemporaryServerError(ResponseError):
    """408, 429 or 5xx listed in TEMPORARY_STATUSES."""


class NotFound(ResponseError):
    """404 Not Found or 410 Gone."""


class PreconditionFailed(ResponseError):
    """412: a condition (If-Match, conditional update criteria) did not hold."""


class RequestRejected(ResponseError):
    """Any other 4xx: the request itself is wrong and must not be repeated as is."""


class UnexpectedResponse(ServerError):
    """A success status whose body is not the FHIR JSON expected."""

    def __init__(self, message: str, *, method: str, url: str, status: int) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {message}")
        self.method = method
        self.url = url
        self.status = status


class OutputConflict(ServerError):
    """Several fhirtrd outputs on the server share one business identifier."""

    def __init__(self, patient_id: str, identifier: str, resource_refs: list[str]) -> None:
        super().__init__(
            f"Patient/{patient_id}: {len(resource_refs)} resources carry the identifier "
            f"{identifier!r} ({', '.join(resource_refs)}); remove the duplicates on the server, "
            f"then sync again"
        )
        self.patient_id = patient_id
        self.identifier = identifier
        self.resource_refs = resource_refs


def response_error(
    *,
    method: str,
    url: str,
    status: int,
    outcome: dict[str, Any] | None,
    body_excerpt: str = "",
    retry_after: float | None = None,
) -> ResponseError:
    """The ``ResponseError`` subclass that fits an HTTP status."""
    cls: type[ResponseError]
    if status in TEMPORARY_STATUSES:
        cls = TemporaryServerError
    elif status in (404, 410):
        cls = NotFound
    elif status == 412:
        cls = PreconditionFailed
    else:
        cls = RequestRejected
    return cls(
        method=method,
        url=url,
        status=status,
        outcome=outcome,
        body_excerpt=body_excerpt,
        retry_after=retry_after,
    )
