"""Bulk Data `$export` client: kick-off, polling, downloads with resume, the job deleted when done.

Why our own: the export must ask only for what the classifier reads (`_type`, and a `_typeFilter`
on the Observation codes in `mappings/`, dropped when a server refuses it), keep the last run's
`transactionTime` for `_since`, survive 429/503 while polling and a download cut in the middle, and
keep the manifest with its `error` and `deleted` files for the report. It speaks through the same
`FhirClient` (session, SMART Backend Services or other auth, timeouts) as the sync. The flow follows
the Bulk Data Access IG: kick-off with `Prefer: respond-async` → 202 + Content-Location; GET the
status URL → 202 (X-Progress, Retry-After) until 200 + manifest; GET each file; DELETE the status URL.
HAPI FHIR differs and is handled: its Retry-After is a fixed 120 s whatever the job's size (so
`max_wait` bounds each wait), its files are Binary resources with `requiresAccessToken: true`, its
manifest gives no counts, and it refuses to DELETE a completed job (404: `job_gone`, not an error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from fhirtrd.server.client import FhirClient, parse_retry_after
from fhirtrd.server.errors import ResponseError, ServerError, UnexpectedResponse, response_error
from fhirtrd.terminology import Terminology

NDJSON = "application/fhir+ndjson"
STATE = "export-state.json"
REFUSED = (400, 422, 501)


class ExportError(ServerError):
    """The export failed: the server said so (its OperationOutcome), or it never finished in time."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export: `level` system, patient or group; the types and filters; `_since`."""

    level: str = "system"
    group: str | None = None
    types: tuple[str, ...] = ()
    type_filters: tuple[str, ...] = ()
    since: str | None = None

    def path(self) -> str:
        if self.level == "group":
            if not self.group:
                raise ExportError("a group-level export needs a Group id")
            return f"Group/{self.group}/$export"
        return "Patient/$export" if self.level == "patient" else "$export"

    def params(self, with_filters: bool = True) -> list[tuple[str, str]]:
        out = [("_outputFormat", NDJSON)]
        if self.types:
            out.append(("_type", ",".join(self.types)))
        if self.since:
            out.append(("_since", self.since))
        if with_filters:
            out += [("_typeFilter", f) for f in self.type_filters]
        return out


def classifier_types(terminology: Terminology) -> tuple[str, ...]:
    """The resource types the classifier reads (the adapter's handlers, Patient and Medication)."""
    from fhirtrd.fhir.inbound import Adapter

    return tuple(sorted({"Patient", "Medication", *Adapter(terminology, validate=False).handlers}))


def observation_filter(terminology: Terminology) -> str:
    """One `_typeFilter` query for every Observation code in the mappings (commas inside escaped,
    since `_typeFilter` itself is a comma-separated list)."""
    codes = sorted(f"{system}|{code}" for system, code in terminology.observations)
    return "Observation?code=" + "%2C".join(quote(c, safe="|:/.-") for c in codes)


@dataclass
class ExportReport:
    """What an export did: the manifest, the files written per kind, what was refused or retried."""

    transaction_time: str | None = None
    status_url: str | None = None
    files: dict[str, list[str]] = field(default_factory=lambda: {"output": [], "error": [], "deleted": []})
    counts: dict[str, int] = field(default_factory=dict)
    type_filter: str = "not asked"
    types_refused: list[str] = field(default_factory=list)
    polls: int = 0
    waited_s: float = 0.0
    download_retries: int = 0
    deleted_job: bool = False
    job_gone: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"transactionTime": self.transaction_time, "status_url": self.status_url, "files": self.files,
                "counts": self.counts, "type_filter": self.type_filter, "types_refused": self.types_refused, "polls": self.polls,
                "waited_s": round(self.waited_s, 1), "download_retries": self.download_retries,
                "job_deleted": self.deleted_job, "job_gone": self.job_gone, "errors": self.errors}


class BulkExport:
    """One export into `out`: `run()` kicks off (or resumes), polls, downloads, deletes the job."""

    def __init__(self, client: FhirClient, out: Path, *, max_wait: float = 60.0, timeout_s: float = 6 * 3600,
                 retries: int = 5, progress: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.out = client, out
        self.max_wait, self.timeout_s, self.retries = max_wait, timeout_s, retries
        self.progress = progress or (lambda text: None)
        self.clock = clock
        self.report = ExportReport()

    # -- plumbing ----------------------------------------------------------------------------------

    def _headers(self, accept: str = "application/fhir+json") -> dict[str, str]:
        headers = {"Accept": accept}
        headers.update(self.client.auth.headers(self.client.session, self.client.timeout))
        return headers

    def _send(self, method: str, url: str, **kw: Any) -> requests.Response:
        """One request; a 401 with a token that can be renewed (SMART tokens expire during long
        exports) is sent once more with the new token."""
        from fhirtrd.server.errors import ServerUnreachable
        try:
            response = self.client.session.request(method, self.client.url(url), timeout=self.client.timeout, **kw)
            headers = kw.get("headers") or {}
            if response.status_code == 401 and "Authorization" in headers and self.client.auth.renew():
                kw["headers"] = {**headers, **self.client.auth.headers(self.client.session, self.client.timeout)}
                response = self.client.session.request(method, self.client.url(url), timeout=self.client.timeout,
                                                       **kw)
            return response
        except requests.RequestException as exc:
            raise ServerUnreachable(f"{method} {url} failed: {exc}", method=method, url=url) from exc

    def _state_path(self) -> Path:
        return self.out / STATE

    def _load_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._state_path().read_text()))
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path())

    # -- the flow ------------------------------------------------------------------------------------

    def kick_off(self, request: ExportRequest) -> str:
        """Start the export; the status URL. A server that refuses `_typeFilter` is asked again
        without it (the classifier drops the Observations it does not read itself). At patient and
        group level, a server that refuses `Medication` (not in the Patient compartment; HAPI FHIR
        answers 400 HAPI-0512) is asked again without it, and the report says so."""
        try:
            return self._kick_off(request)
        except ResponseError as exc:
            if (request.level == "system" or exc.status not in REFUSED or "Medication" not in request.types
                    or "Medication" not in str(exc)):
                raise
        without = replace(request, types=tuple(t for t in request.types if t != "Medication"))
        status_url = self._kick_off(without)
        self.report.types_refused = ["Medication"]
        return status_url

    def _kick_off(self, request: ExportRequest) -> str:
        attempts = [True, False] if request.type_filters else [False]
        for with_filters in attempts:
            headers = self._headers()
            headers["Prefer"] = "respond-async" + (", handling=strict" if with_filters else "")
            response = self._send("GET", request.path(), params=request.params(with_filters), headers=headers)
            if response.status_code == 202 and response.headers.get("Content-Location"):
                self.report.type_filter = "applied by the server" if with_filters else (
                    "refused by the server; Observations filtered locally" if request.type_filters else "not asked")
                return str(response.headers["Content-Location"])
            if with_filters and response.status_code in REFUSED:
                continue
            raise self._error("GET", request.path(), response)
        raise ExportError("the server refused the export")  # pragma: no cover - loop always returns or raises

    def _error(self, method: str, url: str, response: requests.Response) -> ResponseError | ExportError:
        if 200 <= response.status_code < 300:
            return ExportError(f"{method} {url}: answer {response.status_code} without a status URL")
        try:
            outcome = response.json()
        except ValueError:
            outcome = None
        return response_error(method=method, url=url, status=response.status_code, outcome=outcome,
                              body_excerpt=response.text[:300])

    def poll(self, status_url: str) -> dict[str, Any]:
        """Poll until the manifest; honours Retry-After (at most `max_wait`) on 202, 429 and 503."""
        began = self.clock()
        delay = 1.0
        while True:
            response = self._send("GET", status_url, headers=self._headers("application/json"))
            self.report.polls += 1
            status = response.status_code
            if status == 200:
                try:
                    manifest = response.json()
                except ValueError as exc:
                    raise UnexpectedResponse("the manifest is not JSON", method="GET", url=status_url,
                                             status=200) from exc
                self.progress("complete")
                return dict(manifest)
            if status not in (202, 429, 503):
                raise self._error("GET", status_url, response)
            if status == 202:
                self.progress(response.headers.get("X-Progress") or "in progress")
            wait = parse_retry_after(response.headers.get("Retry-After"))
            wait = min(wait if wait is not None else delay, self.max_wait)
            delay = min(delay * 2, self.max_wait)
            if self.clock() - began + wait > self.timeout_s:
                raise ExportError(f"the export did not finish within {self.timeout_s:.0f} s ({status_url})")
            self.report.waited_s += wait
            self.client.sleep(wait)

    def download(self, url: str, target: Path, requires_token: bool) -> int:
        """One file, retried and resumed with a Range request; complete only when it ends a line."""
        part = target.with_suffix(target.suffix + ".part")
        for attempt in range(self.retries + 1):
            have = part.stat().st_size if part.exists() else 0
            headers = self._headers(NDJSON) if requires_token else {"Accept": NDJSON}
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                response = self._send("GET", url, headers=headers, stream=True)
                if response.status_code not in (200, 206):
                    if response.status_code in (429, 500, 502, 503, 504) and attempt < self.retries:
                        self._retry_wait(response)
                        continue
                    raise self._error("GET", url, response)
                mode = "ab" if response.status_code == 206 and have else "wb"
                with part.open(mode) as fh:
                    for chunk in response.iter_content(1 << 16):
                        fh.write(chunk)
                expected = response.headers.get("Content-Length")
                got = part.stat().st_size - (have if mode == "ab" else 0)
                if (expected is not None and int(expected) != got) or not _ends_a_line(part):
                    raise requests.ConnectionError(f"download cut short ({got} bytes)")
            except (requests.RequestException, ServerError) as exc:
                if isinstance(exc, ResponseError) or attempt >= self.retries:
                    raise
                self.report.download_retries += 1
                self.client.sleep(min(2.0 ** attempt, self.max_wait))
                continue
            part.replace(target)
            return target.stat().st_size
        raise ExportError(f"GET {url}: still incomplete after {self.retries} retries")  # pragma: no cover

    def _retry_wait(self, response: requests.Response) -> None:
        self.report.download_retries += 1
        wait = parse_retry_after(response.headers.get("Retry-After"))
        self.client.sleep(min(wait if wait is not None else 1.0, self.max_wait))

    def run(self, request: ExportRequest) -> ExportReport:
        """Kick off (or resume the job recorded in the state file), poll, download, delete the job."""
        self.out.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        status_url = state.get("status_url")
        if not status_url:
            for old in [*self.out.glob("*.ndjson"), *self.out.glob("error/*.ndjson"), *self.out.glob("deleted/*.ndjson")]:
                old.unlink()  # a new job: the directory holds this export only
            status_url = self.kick_off(request)
            state.update({"status_url": status_url, "downloaded": {}, "type_filter": self.report.type_filter,
                          "types_refused": self.report.types_refused})
            self._save_state(state)
        else:
            self.report.type_filter = state.get("type_filter", self.report.type_filter)
            self.report.types_refused = list(state.get("types_refused", []))
        self.report.status_url = status_url
        manifest = self.poll(status_url)
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        self.report.transaction_time = manifest.get("transactionTime")
        requires_token = bool(manifest.get("requiresAccessToken"))
        done: dict[str, str] = state.setdefault("downloaded", {})
        for kind in ("output", "error", "deleted"):
            items = manifest.get(kind) or []
            if kind == "deleted" and not items:
                items = (manifest.get("extension") or {}).get("deleted") or []
            folder = self.out if kind == "output" else self.out / kind
            folder.mkdir(parents=True, exist_ok=True)
            for n, item in enumerate(items):
                url, rtype = str(item.get("url")), str(item.get("type", "unknown"))
                name = f"{rtype}.{n:03d}.ndjson"
                if url not in done:
                    self.download(url, folder / name, requires_token)
                    done[url] = name
                    self._save_state(state)
                self.report.files[kind].append(str(Path(kind if kind != "output" else ".") / name))
                self.report.counts[f"{kind}:{rtype}"] = self.report.counts.get(f"{kind}:{rtype}", 0) + int(
                    item.get("count", 0) or 0)
        for name in self.report.files["error"]:
            for line in (self.out / name).read_text().splitlines():
                if line.strip():
                    outcome = json.loads(line)
                    self.report.errors += [str(i.get("diagnostics", i.get("code"))) for i in outcome.get("issue", [])]
        response = self._send("DELETE", status_url, headers=self._headers())
        self.report.deleted_job = response.status_code in (200, 202, 204)
        # 404: nothing left to delete. HAPI FHIR answers so for a job that has completed ("already
        # cancelled or has completed"); its files expire on the server's own schedule.
        self.report.job_gone = response.status_code == 404
        if not (self.report.deleted_job or self.report.job_gone):
            self.report.errors.append(f"DELETE {status_url}: HTTP {response.status_code} {response.text[:200]}")
        # The next incremental run starts from this export's transactionTime.
        self._save_state({"transactionTime": self.report.transaction_time, "request": manifest.get("request"),
                          "last": self.report.as_dict()})
        return self.report


def last_transaction_time(out: Path) -> str | None:
    """`transactionTime` of the last complete export into `out` (for `_since`), or None."""
    try:
        value = json.loads((out / STATE).read_text()).get("transactionTime")
    except (OSError, ValueError):
        return None
    return str(value) if value else None


def _ends_a_line(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def default_request(terminology: Terminology, level: str, group: str | None, since: str | None,
                    *, type_filter: bool = True, types: Sequence[str] = ()) -> ExportRequest:
    """The classifier's export: its types only, its Observation codes only (when the server allows)."""
    return ExportRequest(level=level, group=group, types=tuple(types) or classifier_types(terminology),
                         type_filters=(observation_filter(terminology),) if type_filter else (), since=since)
