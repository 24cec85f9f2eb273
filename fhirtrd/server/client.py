"""FHIR R4 REST client on requests: timeouts, retries of temporary failures, paging, error mapping.

Why our own client: the sync needs conditional transactions, a rotating SMART backend token and
a retry policy that never repeats a non-idempotent write; the Python FHIR clients we looked at
offer none of the three.

Retry policy (cumulus-fhir-support ``http.py`` is the model): only temporary failures are retried
(no answer at all, or HTTP 408/429/500/502/503/504), after the delay in ``Retry-After`` when the
server gives one, else after the next back-off delay. Delays go through an injected ``sleep`` so
tests run instantly. A POST is retried only when it is conditional: a search by POST, or a
transaction whose every entry is idempotent (PUT, conditional POST with ifNoneExist, GET).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import requests

from fhirtrd import __version__
from fhirtrd.server.auth import Auth, NoAuth
from fhirtrd.server.errors import (
    AuthError,
    ServerConfigError,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
    TransportError,
    UnexpectedResponse,
    response_error,
)

FHIR_JSON = "application/fhir+json"
Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before repeating a request that failed temporarily."""

    backoff: Sequence[float] = (1.0, 2.0, 4.0, 8.0)  # one delay per retry; len = number of retries
    max_retry_after: float = 120.0  # never wait longer than this, whatever Retry-After says

    @property
    def retries(self) -> int:
        return len(self.backoff)


class RateLimiter:
    """At most ``per_second`` request starts per second across all threads (evenly spaced)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ServerConfigError(f"request rate must be positive, got {per_second}")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass
class RequestStats:
    """Counts of HTTP exchanges, for the run report and the benchmark."""

    requests: int = 0
    retries: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: str, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(retry)
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_idempotent_bundle(bundle: Mapping[str, Any]) -> bool:
    """True when replaying the transaction/batch cannot create anything twice."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if method == "POST" and not request.get("ifNoneExist"):
            return False
        if method not in ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"):
            return False
        if method == "PATCH" and not request.get("ifMatch"):
            return False
    return True


class FhirClient:
    """A FHIR R4 server at ``base_url``, spoken to in JSON."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        session: requests.Session | None = None,
        timeout: Timeout = (10.0, 120.0),
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ServerConfigError(f"server URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.auth: Auth = auth or NoAuth()
        self.session = session or requests.Session()
        self.timeout = timeout
        self.retry = retry
        self.sleep = sleep
        self.rate_limiter = rate_limiter
        self.stats = RequestStats()
        self.last_server_date: datetime | None = None

    # ------------------------------------------------------------------ plumbing

    def url(self, path_or_url: str) -> str:
        """Absolute URL for a path relative to the base (absolute URLs pass through)."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return urljoin(self.base_url + "/", path_or_url.lstrip("/"))

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_safe: bool | None = None,
        kind: str = "other",
    ) -> tuple[int, dict[str, Any] | None, Mapping[str, str]]:
        """Send one request with retries; return (status, parsed JSON body or None, headers).

        ``retry_safe`` says whether repeating the request is harmless; by default every method
        except POST is.
        """
        method = method.upper()
        url = self.url(path_or_url)
        safe = retry_safe if retry_safe is not None else method != "POST"
        renewed = False
        attempt = 0
        while True:
            try:
                response = self._send(method, url, params, json_body, headers, kind, retry=attempt > 0)
            except TransportError:
                if safe and attempt < self.retry.retries:
                    self.sleep(self.retry.backoff[attempt])
                    attempt += 1
                    continue
                raise
            status = response.status_code
            if status in (401, 403) and not renewed and self.auth.renew():
                renewed = True  # one retry with a fresh token, not counted as a retry attempt
                continue
            if status < 400:
                return status, self._json(response, method, url), response.headers
            body = self._json_or_none(response)
            if status in (401, 403):
                err = response_error(method=method, url=url, status=status, outcome=body,
                                     body_excerpt=response.text[:300])
                raise AuthError(f"the server refused our credentials: {err}", status=status, url=url)
            error = response_error(
                method=method,
                url=url,
                status=status,
                outcome=body,
                body_excerpt=response.text[:300],
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
            if error.is_temporary and safe and attempt < self.retry.retries:
                delay = self.retry.backoff[attempt]
                if error.retry_after is not None:
                    delay = min(error.retry_after, self.retry.max_retry_after)
                self.sleep(delay)
                attempt += 1
                continue
            raise error

    def _send(
        self,
        method: str,
        url: str,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        extra_headers: Mapping[str, str] | None,
        kind: str,
        retry: bool,
    ) -> requests.Response:
        # no-cache: servers that reuse a recent identical search (HAPI FHIR does, for 60 s by default)
        # would otherwise answer "no outputs yet" right after fhirtrd wrote them
        headers = {"Accept": FHIR_JSON, "User-Agent": f"fhirtrd/{__version__}", "Cache-Control": "no-cache"}
        if json_body is not None:
            headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
            # FHIR lets a server carry an update's earlier tags forward (HAPI FHIR does): the old
            # content-hash tag would stay beside the new one. HAPI's X-Meta-Snapshot-Mode makes
            # the tags sent the whole set; other servers ignore the header.
            headers["X-Meta-Snapshot-Mode"] = "TAG"
        headers.update(self.auth.headers(self.session, self.timeout))
        headers.update(extra_headers or {})
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()
        self.stats.count(kind, retry)
        try:
            response = self.session.request(
                method, url, params=params, json=json_body, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise ServerTimeout(f"{method} {url} timed out: {exc}", method=method, url=url) from exc
        except requests.ConnectionError as exc:
            raise ServerUnreachable(f"{method} {url} failed: {exc}", method=method, url=url) from exc
        except requests.RequestException as exc:
            raise ServerConfigError(f"{method} {url} cannot be sent: {exc}") from exc
        date = response.headers.get("Date")
        if date:
            try:
                self.last_server_date = email.utils.parsedate_to_datetime(date)
            except (TypeError, ValueError):
                pass  # a malformed Date header only costs us the server clock
        return response

    @staticmethod
    def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _json(self, response: requests.Response, method: str, url: str) -> dict[str, Any] | None:
        if not response.content:
            return None
        body = self._json_or_none(response)
        if body is None:
            raise UnexpectedResponse(
                f"the body is not a JSON object (Content-Type {response.headers.get('Content-Type')!r})",
                method=method,
                url=url,
                status=response.status_code,
            )
        return body

    def _expect(self, body: dict[str, Any] | None, resource_type: str, method: str, url: str) -> dict[str, Any]:
        if body is None or body.get("resourceType") != resource_type:
            got = body.get("resourceType") if body else "an empty body"
            raise UnexpectedResponse(f"expected a {resource_type}, got {got}", method=method, url=url, status=200)
        return body

    # ------------------------------------------------------------------ interactions

    def get(
        self,
        path_or_url: str,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        kind: str = "read",
    ) -> dict[str, Any]:
        """GET a resource (or Bundle); the body must be a FHIR resource."""
        _, body, _ = self.request("GET", path_or_url, params=params, kind=kind)
        if body is None or "resourceType" not in body:
            raise UnexpectedResponse("expected a FHIR resource", method="GET", url=self.url(path_or_url), status=200)
        return body

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self._expect(self.get(f"{resource_type}/{resource_id}"), resource_type, "GET",
                            self.url(f"{resource_type}/{resource_id}"))

    def pages(
        self,
        path_or_url: str,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        kind: str = "search",
        first_page: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield each Bundle page, following Bundle.link[relation=next] until there is none."""
        seen: set[str] = set()
        page = first_page if first_page is not None else self.get(path_or_url, params, kind=kind)
        while True:
            page = self._expect(page, "Bundle", "GET", self.url(path_or_url))
            yield page
            next_url = next(
                (link.get("url") for link in page.get("link") or [] if link.get("relation") == "next"), None
            )
            if not next_url:
                return
            next_url = self.url(next_url)
            if next_url in seen:
                raise UnexpectedResponse(
                    f"paging loops: the next link {next_url} was already followed",
                    method="GET", url=next_url, status=200,
                )
            seen.add(next_url)
            page = self.get(next_url, kind=kind)

    def search(
        self,
        path_or_url: str,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        kind: str = "search",
        include_included: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Yield the resources of every page (matches, and includes unless told not to)."""
        for page in self.pages(path_or_url, params, kind=kind):
            yield from bundle_resources(page, include_included=include_included)

    def transaction(self, bundle: Mapping[str, Any], kind: str = "transaction") -> dict[str, Any]:
        """POST a transaction (or batch) Bundle; retried only when every entry is idempotent."""
        _, body, _ = self.request(
            "POST", self.base_url, json_body=bundle, retry_safe=is_idempotent_bundle(bundle), kind=kind
        )
        return self._expect(body, "Bundle", "POST", self.base_url)

    def capabilities(self) -> ServerCapabilities:
        """Read and interpret the CapabilityStatement (GET [base]/metadata)."""
        body = self.get("metadata", kind="metadata")
        return ServerCapabilities.from_statement(self._expect(body, "CapabilityStatement", "GET",
                                                              self.url("metadata")))

    def server_now(self) -> datetime:
        """The server's clock, to the millisecond when it can tell.

        A search Bundle's meta.lastUpdated (when the search ran; ms precision on most servers)
        from ``GET Patient?_count=0``; else the Date header (whole seconds); else our own clock.
        The high-water mark of a run comes from here, so it is the server's time, not ours.
        """
        try:
            bundle = self.get("Patient", [("_count", "0")], kind="clock")
            stamp = (bundle.get("meta") or {}).get("lastUpdated")
            if isinstance(stamp, str):
                return datetime.fromisoformat(stamp)
        except (ServerError, ValueError):
            pass  # fall back to the Date header
        return self.last_server_date or datetime.now(UTC)


def bundle_resources(bundle: Mapping[str, Any], include_included: bool = True) -> Iterator[dict[str, Any]]:
    """The resources in a search Bundle, skipping search.mode=outcome entries."""
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue  # a malformed entry is skipped, not a crash
        resource = entry.get("resource")
        mode = (entry.get("search") or {}).get("mode", "match")
        if not isinstance(resource, dict) or mode == "outcome":
            continue
        if mode == "include" and not include_included:
            continue
        yield resource


@dataclass(frozen=True)
class ServerCapabilities:
    """What the CapabilityStatement says the server can do, as far as the sync cares."""

    fhir_version: str = ""
    transaction: bool = False
    batch: bool = False
    conditional_create: frozenset[str] = frozenset()
    conditional_update: frozenset[str] = frozenset()
    search_params: Mapping[str, frozenset[str]] = field(default_factory=dict)
    operations: Mapping[str, frozenset[str]] = field(default_factory=dict)  # type ("" = system) -> names
    software: str = ""

    @classmethod
    def from_statement(cls, statement: Mapping[str, Any]) -> ServerCapabilities:
        rest: Mapping[str, Any] = next(
            (r for r in statement.get("rest") or [] if r.get("mode", "server") == "server"), {})
        system_interactions = {i.get("code") for i in rest.get("interaction") or []}
        conditional_create: set[str] = set()
        conditional_update: set[str] = set()
        search_params: dict[str, frozenset[str]] = {}
        operations: dict[str, frozenset[str]] = {
            "": frozenset(_op_name(o) for o in rest.get("operation") or [])
        }
        for resource in rest.get("resource") or []:
            rtype = resource.get("type", "")
            if resource.get("conditionalCreate"):
                conditional_create.add(rtype)
            if resource.get("conditionalUpdate"):
                conditional_update.add(rtype)
            search_params[rtype] = frozenset(p.get("name", "") for p in resource.get("searchParam") or [])
            operations[rtype] = frozenset(_op_name(o) for o in resource.get("operation") or [])
        return cls(
            fhir_version=str(statement.get("fhirVersion", "")),
            transaction="transaction" in system_interactions,
            batch="batch" in system_interactions,
            conditional_create=frozenset(conditional_create),
            conditional_update=frozenset(conditional_update),
            search_params=search_params,
            operations=operations,
            software=str((statement.get("software") or {}).get("name", "")),
        )

    def supports_operation(self, resource_type: str, name: str) -> bool:
        name = name.lstrip("$")
        return name in self.operations.get(resource_type, frozenset()) or (
            f"{resource_type}-{name}" in self.operations.get("", frozenset())
        )

    def supports_search_param(self, resource_type: str, name: str) -> bool:
        return name in self.search_params.get(resource_type, frozenset())

    def require_transactions(self) -> None:
        if not self.transaction:
            raise ServerError(
                "the server's CapabilityStatement does not list the 'transaction' interaction; "
                "fhirtrd writes each patient's outputs as one all-or-nothing transaction"
            )


def _op_name(operation: Mapping[str, Any]) -> str:
    name = str(operation.get("name", "")).lstrip("$")
    definition = str(operation.get("definition", ""))
    # some servers name the operation after its OperationDefinition id ("Patient-everything")
    if "/" in definition and not name:
        name = definition.rsplit("/", 1)[-1]
    return name
