"""Reads FHIR R4 inputs — Bundles, single resources, NDJSON, plain or gzipped, files or directories.

Yields `Entry` values one resource at a time, so a Bulk Data export of any size streams through
without being held in memory. What cannot be read becomes a `DataWarning` (or, for an input that
cannot be opened at all, an `InputError`); one bad line or entry never stops the rest.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from fhirtrd.domain.model import DataWarning
from fhirtrd.errors import InputError

SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")
#: Bundles inside Bundles deeper than this are refused (real exports nest one or two)
MAX_BUNDLE_NESTING = 8
BUNDLE_TYPES = frozenset({"collection", "searchset", "transaction", "batch", "document", "message",
                          "history", "transaction-response", "batch-response"})


@dataclass(slots=True)
class Entry:
    """One resource, where it came from (file, line or bundle entry) and its Bundle fullUrl, if any."""

    resource: dict[str, Any]
    source: str
    full_url: str | None = None


@dataclass(slots=True)
class ReadReport:
    """What the reader saw across all inputs: files read, files that failed, global warnings."""

    files: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)

    def warn(self, message: str, source: str, *, resource: str | None = None,
             element: str | None = None, code: str = "structure") -> None:
        self.warnings.append(DataWarning(message=message, resource=resource, element=element,
                                         source=source, code=code))


def input_files(paths: Iterable[Path | str], report: ReadReport) -> Iterator[Path]:
    """Every input file under `paths` (directories recursively, sorted); a missing path is recorded."""
    for p in map(Path, paths):
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and child.name.endswith(SUFFIXES):
                    yield child
        elif p.exists():
            yield p
        else:
            report.failed.append(str(p))
            report.warn("no such file or directory", str(p), code="unreadable")


_BUFFER = 1 << 20  # lines of a large NDJSON file are iterated 4× faster than with the default 8 KiB


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb", buffering=_BUFFER)


def read_path(path: Path, report: ReadReport) -> Iterator[Entry]:
    """The resources of one file; NDJSON by suffix, or JSON sniffed as one document or NDJSON."""
    report.files += 1
    name = str(path)
    try:
        with _open(path) as fh:
            if path.name.endswith((".ndjson", ".ndjson.gz")):
                yield from read_ndjson(fh, name, report)
                return
            data = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        report.failed.append(name)
        raise InputError(f"cannot be read: {exc}", path=name) from exc
    yield from read_document(data, name, report)


def read_ndjson(fh: BinaryIO | io.BytesIO, name: str, report: ReadReport) -> Iterator[Entry]:
    for lineno, line in enumerate(fh, start=1):
        line = line.strip()
        if not line:
            continue
        where = f"{name}:{lineno}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            report.warn(f"line is not valid JSON ({exc}); skipped", where)
            continue
        yield from expand(value, where, report)


def read_document(data: bytes, name: str, report: ReadReport) -> Iterator[Entry]:
    """One JSON document (Bundle or resource), or NDJSON content that arrived under a .json name."""
    if not data.strip():
        report.failed.append(name)
        report.warn("the input is empty", name, code="empty")
        return
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if _looks_like_ndjson(data):
            yield from read_ndjson(io.BytesIO(data), name, report)
            return
        report.failed.append(name)
        report.warn(f"not valid JSON: {exc}", name, code="invalid-json")
        return
    yield from expand(value, name, report)


def _looks_like_ndjson(data: bytes) -> bool:
    """NDJSON under a .json name: several lines, the first of which is a whole JSON object."""
    lines = [line for line in data.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(orjson.loads(lines[0]), dict)
    except orjson.JSONDecodeError:
        return False


def expand(value: Any, where: str, report: ReadReport, *, level: int = 1) -> Iterator[Entry]:
    """A parsed JSON value as resources: Bundles are opened (nested ones too), others passed on.

    Bundles nested more than `MAX_BUNDLE_NESTING` deep become a warning naming them and are skipped;
    the rest is read. (How deep a resource nests is checked where it is read, `service.Run.add`:
    only for the resources the classifier reads.)
    """
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        report.warn("not a FHIR resource (no resourceType); skipped", where, code="not-fhir")
        return
    if value["resourceType"] != "Bundle":
        yield Entry(value, where)
        return
    if level > MAX_BUNDLE_NESTING:
        report.warn(f"Bundles nested more than {MAX_BUNDLE_NESTING} deep; skipped", where, resource=resource_ref(value),
                    code="too-deep")
        return
    entries = value.get("entry")
    if entries is None:
        return
    if not isinstance(entries, list):
        report.warn("Bundle.entry is not a list; bundle skipped", where, resource=resource_ref(value),
                    element="Bundle.entry")
        return
    for i, entry in enumerate(entries):
        at = f"{where}#entry[{i}]"
        if not isinstance(entry, dict):
            report.warn("entry is not an object; skipped", at, element=f"Bundle.entry[{i}]")
            continue
        res = entry.get("resource")
        if res is None:
            continue  # a request-only entry (e.g. DELETE in a transaction) carries no data
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            report.warn("entry resource has no resourceType; skipped", at,
                        element=f"Bundle.entry[{i}].resource", code="not-fhir")
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if res["resourceType"] == "Bundle":
            yield from expand(res, at, report, level=level + 1)
        else:
            yield from (Entry(e.resource, e.source, full_url) for e in expand(res, at, report, level=level + 1))


def resource_ref(resource: dict[str, Any]) -> str:
    rid = resource.get("id")
    rtype = resource.get("resourceType")
    return f"{rtype}/{rid[:80]}" if isinstance(rid, str) else str(rtype)
