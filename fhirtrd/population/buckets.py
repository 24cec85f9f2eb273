"""Streams inputs once into on-disk patient-hash buckets, skipping lines of types never read.

Why: memory stays flat whatever the population. Each relevant resource is written, with its source
and Bundle fullUrl, to the bucket of its patient (a stable hash of the patient id), so one bucket
holds whole patients and can be classified alone. Medications are not a patient's: they go to a side
file every bucket reads first. A line of a type the adapter never reads is dropped after a cheap look
at its raw bytes, before it is parsed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from fhirtrd.errors import InputError
from fhirtrd.fhir.inbound import Adapter, subject_of
from fhirtrd.fhir.inbound.common import reference_id
from fhirtrd.fhir.reader import Entry, ReadReport, _open, expand, input_files, read_path
from fhirtrd.terminology import Terminology

MEDICATIONS = "medications"
NO_SUBJECT = 0  # entries without a patient go to bucket 0, where the classify step reports them
_TYPE = re.compile(rb'\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')  # written first by every server
_CODE = re.compile(rb'"code"\s*:\s*"([^"\\]*)"')  # every Coding.code (and any other "code") of a line
_SUBJECT = re.compile(rb'"subject"\s*:\s*\{\s*"reference"\s*:\s*"([^"\\]*)"')
_PARSED_ALWAYS = frozenset({b"Patient", b"Medication", b"Bundle"})
_FLUSH = 1 << 16  # a bucket's buffer is written out at this size…
_BUFFERS = 16 << 20  # …or less, so all of a split process's buffers stay within this


def bucket_of(pid: str, buckets: int) -> int:
    """The bucket of a patient id: stable across runs, processes and machines."""
    return zlib.crc32(pid.encode()) % buckets


def encode(entry: Entry, raw: bytes | None = None) -> bytes:
    """One bucket line: `[source, fullUrl]`, a tab, the resource JSON (JSON escapes every tab);
    `raw` is the resource's own NDJSON line when it has one (written as read, not re-serialised)."""
    return orjson.dumps([entry.source, entry.full_url]) + b"\t" + (raw or orjson.dumps(entry.resource)) + b"\n"


def decode(line: bytes) -> Entry:
    """A bucket line back as its entry; raises `NotJson` for a line routed unparsed that is not
    JSON (see `Splitter.quick_patient`)."""
    head, _, body = line.partition(b"\t")
    source, full_url = orjson.loads(head)
    try:
        return Entry(orjson.loads(body), source, full_url)
    except orjson.JSONDecodeError:
        try:  # the error of the line as read, without the bucket's line end (as `fhirtrd classify` says it)
            orjson.loads(body.rstrip(b"\n"))
        except orjson.JSONDecodeError as exc:
            raise NotJson(source, exc) from exc
        raise


class NotJson(Exception):
    """A bucket line whose resource is not JSON: warned about as `fhirtrd classify` does."""

    def __init__(self, source: str, error: orjson.JSONDecodeError) -> None:
        super().__init__(f"line is not valid JSON ({error}); skipped")
        self.source = source


def entries_of(lines: Iterable[bytes], report: ReadReport, path: str | None = None, offset: int = 0
               ) -> Iterator[Entry]:
    """Bucket lines as entries; for lines of a chunk of `path`, sources numbered as in the file
    (`offset` lines before the chunk). A line routed unparsed that is not JSON becomes a warning."""
    for line in lines:
        try:
            entry = decode(line)
        except NotJson as exc:
            report.warn(str(exc), reline(exc.source, path, offset) if path else exc.source)
            continue
        if offset and path:
            entry = Entry(entry.resource, reline(entry.source, path, offset), entry.full_url)
        yield entry


def read_bucket(path: Path, report: ReadReport, chunk: Chunk | None = None, offset: int = 0) -> Iterator[Entry]:
    """A bucket file's entries; those split from `chunk` get their file's line numbers back."""
    if not path.exists():
        return
    with path.open("rb", buffering=1 << 20) as fh:
        yield from entries_of(fh, report, chunk.path if chunk is not None else None, offset)


@dataclass
class SplitReport:
    """What the split saw: lines read and skipped unparsed, entries per bucket, input warnings."""

    read: ReadReport = field(default_factory=ReadReport)
    lines: int = 0
    skipped_unparsed: int = 0
    entries: int = 0
    bytes_in: int = 0


class Splitter:
    """Writes entries to bucket files through small in-memory buffers (no file handle per bucket)."""

    def __init__(self, directory: Path, buckets: int, terminology: Terminology) -> None:
        self.directory, self.buckets = directory, buckets
        directory.mkdir(parents=True, exist_ok=True)
        self.adapter = Adapter(terminology, validate=False)
        self.read_types = frozenset({*self.adapter.handlers, "Patient", "Medication", "Bundle"})
        self.observation_codes = frozenset(code.encode() for _, code in (*terminology.observations,
                                                                          *terminology.panels))
        self.buffers: dict[str, bytearray] = {}
        self.flush_at = max(4096, min(_FLUSH, _BUFFERS // max(1, buckets)))
        self.aliases: dict[str, str] = {}
        self.report = SplitReport()

    def path(self, name: str | int) -> Path:
        return self.directory / f"{name}.bucket"

    def _write(self, name: str, data: bytes) -> None:
        buf = self.buffers.get(name)
        if buf is None:
            buf = self.buffers[name] = bytearray()
        buf += data
        if len(buf) >= self.flush_at:
            self._flush(name)

    def _flush(self, name: str) -> None:
        buf = self.buffers.pop(name, None)
        if buf:
            with (self.directory / f"{name}.bucket").open("ab") as fh:
                fh.write(buf)

    def close(self) -> None:
        for name in list(self.buffers):
            self._flush(name)

    def add(self, entry: Entry, raw: bytes | None = None) -> None:
        """Route one entry (the same relevance rules as `service.Run.add`, applied before the split)."""
        r = entry.resource
        rtype = r["resourceType"]
        if rtype == "Medication":
            self._write(MEDICATIONS, encode(entry, raw))
            return
        if rtype != "Patient" and (rtype not in self.adapter.handlers
                                   or (rtype == "Observation" and not self.adapter.observation_hits(r))):
            return
        pid = subject_of(r, self.aliases)
        if rtype == "Patient" and pid is not None and entry.full_url and entry.full_url != f"Patient/{pid}":
            self.aliases[entry.full_url] = f"Patient/{pid}"
        self.report.entries += 1
        self._write(str(bucket_of(pid, self.buckets) if pid is not None else NO_SUBJECT), encode(entry, raw))

    def relevant(self, line: bytes) -> bool:
        """Cheap look at a raw line: False only when its resource is surely of a type never read.

        The type is known without parsing when the line opens with `resourceType` (so it is the
        resource's own type, not a contained or nested one's); any other line is parsed.
        """
        m = _TYPE.match(line)
        if m is None:
            return True  # let the parser say what it is, or what is wrong with it
        rtype = m.group(1)
        if rtype == b"Observation":  # no code the mappings know anywhere in it: never read
            return not self.observation_codes.isdisjoint(_CODE.findall(line))
        return rtype.decode() in self.read_types

    def quick_patient(self, line: bytes) -> str | None:
        """The patient of a relevant line read off its bytes, when that is certain: a resource of a
        read type (not Patient or Medication) with one `subject` in it — so the top-level one, as
        no resource the adapter reads nests another — given as a plain reference to a patient.
        None means: parse the line."""
        m = _TYPE.match(line)
        if m is None or m.group(1) in _PARSED_ALWAYS or line.count(b'"subject"') != 1:
            return None
        ref = _SUBJECT.search(line)
        if ref is None:
            return None
        return reference_id({"reference": ref.group(1).decode()}, "Patient", self.aliases)

    def split_ndjson(self, fh: BinaryIO, name: str, size: int | None = None) -> None:
        """The NDJSON lines of `fh` from where it stands (`size` bytes of them, default all),
        numbered from 1."""
        report = self.report.read
        left = size
        for lineno, line in enumerate(fh, start=1):
            if left is not None:
                if left <= 0:
                    break
                left -= len(line)
            self.report.lines += 1
            self.report.bytes_in += len(line)
            if not self.relevant(line):
                self.report.skipped_unparsed += 1
                continue
            line = line.strip()
            if not line:
                continue
            where = f"{name}:{lineno}"
            pid = self.quick_patient(line)
            if pid is not None:  # routed unparsed; its JSON is checked when its bucket is read
                self.report.entries += 1
                self._write(str(bucket_of(pid, self.buckets)), encode(Entry({}, where), line))
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                report.warn(f"line is not valid JSON ({exc}); skipped", where)
                continue
            if isinstance(value, dict) and isinstance(value.get("resourceType"), str) \
                    and value["resourceType"] != "Bundle":
                self.add(Entry(value, where), line)
                continue
            for entry in expand(value, where, report):
                self.add(entry)

    def split_file(self, path: Path, start: int = 0, size: int | None = None) -> None:
        """One input file, or for NDJSON the `size` bytes from `start` (a chunk that begins a line;
        its lines are numbered from 1, see `Chunk`)."""
        report = self.report.read
        try:
            if path.name.endswith((".ndjson", ".ndjson.gz")):
                if start == 0:
                    report.files += 1
                try:
                    with _open(path) as fh:
                        if start:
                            fh.seek(start)
                        self.split_ndjson(fh, str(path), size)
                except (OSError, EOFError) as exc:
                    report.failed.append(str(path))
                    raise InputError(f"cannot be read: {exc}", path=str(path)) from exc
            else:
                for entry in read_path(path, report):
                    self.add(entry)
        except InputError as exc:
            report.warn(str(exc), str(path), code="unreadable")

    def split(self, paths: Sequence[Path | str]) -> SplitReport:
        """Stream every input under `paths` into the buckets (an unreadable file is recorded)."""
        try:
            for path in input_files(paths, self.report.read):
                self.split_file(path)
        finally:
            self.close()
        return self.report


@dataclass(frozen=True)
class Chunk:
    """A piece of the input one process splits: a whole file, or whole lines of a plain NDJSON file.

    The lines of a chunk that starts inside its file are numbered from 1 while it is split (no
    process has to count the lines before it); `line_offsets` turns them into the file's own line
    numbers once every chunk has reported how many lines it had.
    """

    path: str
    start: int = 0
    size: int | None = None


def plan_chunks(paths: Sequence[Path | str], report: ReadReport, chunk_bytes: int) -> list[Chunk]:
    """Input files cut into chunks of about `chunk_bytes` at line ends (gzip and JSON stay whole).
    Only the line end after each cut is read: planning costs one short read per chunk."""
    chunks: list[Chunk] = []
    for path in input_files(paths, report):
        size = path.stat().st_size
        if not path.name.endswith(".ndjson") or size <= chunk_bytes:
            chunks.append(Chunk(str(path)))
            continue
        start = 0
        with path.open("rb") as fh:
            while start < size:
                fh.seek(min(size, start + chunk_bytes))
                fh.readline()  # to the end of the line the cut fell in
                end = min(size, fh.tell())
                chunks.append(Chunk(str(path), start, end - start))
                start = end
    return chunks


def line_offsets(chunks: Sequence[Chunk], lines: Sequence[int]) -> list[int]:
    """For each chunk, the lines of its file before it (`lines`: how many lines each chunk had)."""
    offsets: list[int] = []
    for k, chunk in enumerate(chunks):
        offsets.append(0 if chunk.start == 0 else offsets[k - 1] + lines[k - 1])
    return offsets


def reline(source: str, path: str, offset: int) -> str:
    """A source `path:N…` numbered within its chunk, as the file's own line `path:N+offset…`."""
    prefix = f"{path}:"
    if not offset or not source.startswith(prefix):
        return source
    rest = source[len(prefix):]
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return f"{prefix}{int(rest[:digits]) + offset}{rest[digits:]}" if digits else source
