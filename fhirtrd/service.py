"""The one service function behind every door: FHIR resources in, one PatientResult per patient out.

CLI, REST API, CDS Hooks and batch sync all call `classify_resources` / `classify_paths`; none of
them re-implements the pipeline (read → group by patient → facts → classify).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fhirtrd.domain.classify import classify
from fhirtrd.domain.definitions import with_definitions
from fhirtrd.domain.model import DataWarning, PatientResult
from fhirtrd.errors import InputError
from fhirtrd.fhir.inbound import Adapter, RecordBuilder
from fhirtrd.fhir.inbound.common import is_fhir_id, patient_of, server_base
from fhirtrd.fhir.elements import MAX_DEPTH, depth_exceeds
from fhirtrd.fhir.reader import Entry, ReadReport, expand, input_files, read_path, resource_ref
from fhirtrd.terminology import Terminology


@dataclass
class Run:
    """One classification run: patients' builders, the Medication index and input-level warnings."""

    terminology: Terminology
    as_of: date
    validate: bool = True
    report: ReadReport = field(default_factory=ReadReport)
    builders: dict[str, RecordBuilder] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # urn:uuid / fullUrl → Patient/id
    uuid_alias: dict[str, str] = field(default_factory=dict)  # bare uuid used as key → Patient id
    bases: set[str] = field(default_factory=set)  # server bases of the input's absolute fullUrls

    def __post_init__(self) -> None:
        self.adapter = Adapter(self.terminology, validate=self.validate)

    def builder(self, pid: str) -> RecordBuilder:
        b = self.builders.get(pid)
        if b is None:
            b = self.builders[pid] = RecordBuilder(pid, self.terminology)
        return b

    def add(self, entry: Entry) -> None:
        r = entry.resource
        rtype = r["resourceType"]
        base = server_base(entry.full_url) if entry.full_url else None
        if base:
            self.bases.add(base)
        if rtype not in self.adapter.handlers and rtype not in ("Medication", "Patient"):
            return  # most resources of a record: decided before anything else is looked at
        if rtype == "Observation" and not self.adapter.observation_hits(r):
            return
        if depth_exceeds(r):  # before any reader walks it
            self.report.warn(f"nested deeper than {MAX_DEPTH} levels; skipped", entry.source,
                             resource=resource_ref(r), code="too-deep")
            return
        if rtype == "Medication":
            self.adapter.remember_medication(r, entry.full_url)
            return
        if rtype == "Patient":
            pid = r.get("id")
            if not isinstance(pid, str) or not pid:
                self.report.warn("Patient without an id; skipped", entry.source, resource="Patient", element="Patient.id")
                return
            if not is_fhir_id(pid):
                self.report.warn(f"Patient id {pid[:80]!r} is not a FHIR id (1-64 of A-Z a-z 0-9 - .); patient skipped",
                                 entry.source, resource="Patient", element="Patient.id", code="invalid-id")
                return
            if r.get("status") == "entered-in-error":
                return
            if entry.full_url and entry.full_url != f"Patient/{pid}":
                self.aliases[entry.full_url] = f"Patient/{pid}"
                if entry.full_url.startswith("urn:uuid:"):
                    self.uuid_alias[entry.full_url[9:]] = pid
            self.builder(pid)
            return
        pid, problem = patient_of(r, self.aliases, self.bases)
        if pid is None:
            rid = r.get("id")
            element = f"{rtype}.{'patient' if rtype in ('AllergyIntolerance',) else 'subject'}"
            self.report.warn(f"{rtype} {problem}; skipped" if problem else
                             f"{rtype} has no subject/patient reference; skipped", entry.source,
                             resource=f"{rtype}/{rid}" if isinstance(rid, str) else rtype,
                             element=element, code="foreign-reference" if problem else "no-subject")
            return
        self.adapter.add(self.builder(pid), r, entry.source, self.aliases)

    def results(self) -> Iterator[PatientResult]:
        """Classify every patient seen (sorted by id), merging keys that were aliases of one patient."""
        for key, target in self.uuid_alias.items():
            if key != target and key in self.builders:
                src = self.builders.pop(key)
                dst = self.builder(target)
                for name in ("exposures", "dispenses", "procedures", "conditions", "measurements",
                             "intolerances", "warnings", "pending", "deferred"):
                    getattr(dst, name).extend(getattr(src, name))
                for k, v in src.administrations.items():
                    dst.administrations[k].extend(v)
        for pid in sorted(self.builders):
            b = self.builders[pid]
            self.adapter.finish(b)
            record = b.record(self.as_of)
            assessments = classify(record, self.terminology.rules, self.as_of)
            assessments = with_definitions(record, assessments, self.terminology.rules, self.as_of)
            yield PatientResult(patient=record.patient, as_of=self.as_of, assessments=assessments,
                                warnings=tuple(b.warnings))

    @property
    def warnings(self) -> list[DataWarning]:
        return self.report.warnings


def classify_resources(resources: Iterable[dict[str, Any]], terminology: Terminology, as_of: date,
                       *, source: str = "request", report: ReadReport | None = None,
                       run: Run | None = None) -> list[PatientResult]:
    """Classify FHIR resources given as dicts (Bundles are opened); one result per patient.

    Input-level warnings (an entry without a subject, a non-FHIR entry) go to `report` when given;
    `run` (optional) keeps the patients' facts for a caller that draws them (the clinician's page).
    """
    run = run or Run(terminology, as_of, report=report or ReadReport())
    for i, resource in enumerate(resources):
        for entry in expand(resource, f"{source}[{i}]" if i else source, run.report):
            run.add(entry)
    return list(run.results())


def classify_bundle(bundle: dict[str, Any], terminology: Terminology, as_of: date,
                    *, report: ReadReport | None = None) -> list[PatientResult]:
    return classify_resources([bundle], terminology, as_of, source="Bundle", report=report)


def classify_paths(paths: Sequence[Path | str], terminology: Terminology, as_of: date,
                   *, progress: Callable[[int, int], None] | None = None, run: Run | None = None
                   ) -> Iterator[PatientResult]:
    """Classify every input under `paths`. An unreadable file is recorded in `run.report.failed`."""
    run = run or Run(terminology, as_of)
    files = list(input_files(paths, run.report))
    for n, path in enumerate(files, start=1):
        try:
            for entry in read_path(path, run.report):
                run.add(entry)
        except InputError as exc:
            run.report.warn(str(exc), str(path), code="unreadable")
        if progress:
            progress(n, len(files))
    yield from run.results()
