"""Batch sync: for each selected patient read, assess, plan, apply; record progress; report.

One patient is one unit of work: read the record, classify it (``fhirtrd.service``), build the
outputs (``fhirtrd.fhir.outbound``), read what fhirtrd wrote before, plan, and send the plan as one
transaction. A failing patient is recorded with its reason and the run goes on; only an
authentication failure stops the run, since every later patient would fail the same way.
Patients run on a bounded pool of worker threads; their results are collected, recorded in the
state file and reported on the calling thread, so an interruption (Ctrl-C, SIGTERM) leaves a state
that a second run resumes from.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fhirtrd.errors import FhirtrdError
from fhirtrd.fhir.outbound import OutputSettings, build_transaction, plan_flag_deactivations
from fhirtrd.fhir.outbound_errors import OutboundError
from fhirtrd.schemas import dump_result
from fhirtrd.server.client import FhirClient, ServerCapabilities
from fhirtrd.server.errors import (
    AuthError,
    PreconditionFailed,
    RequestRejected,
    ResponseError,
    ServerError,
    UnexpectedResponse,
)
from fhirtrd.server.fetch import OUTPUT_TYPES, fetch_patient, read_outputs, searchable_by_patient
from fhirtrd.server.plan import Conventions, PatientPlan, plan_patient, to_transaction
from fhirtrd.server.selection import Selection, iter_patients
from fhirtrd.server.state import SyncState, fhir_instant
from fhirtrd.service import classify_resources
from fhirtrd.terminology import Terminology

WRITTEN, UNCHANGED, NOT_ASSESSED, PLANNED, FAILED = "written", "unchanged", "not-assessed", "planned", "failed"
#: times a patient is read and planned again after another writer changed its outputs first
REPLANS = 3


def _lost_race(exc: ResponseError) -> bool:
    """412 (If-Match failed) or 409 (the server refused a concurrent write): another writer won."""
    return isinstance(exc, PreconditionFailed) or (isinstance(exc, RequestRejected) and exc.status == 409)


@dataclass(frozen=True)
class SyncConfig:
    """How a run behaves (the CLI fills it from its options)."""

    as_of: date
    dry_run: bool = False
    workers: int = 4
    use_everything: bool = True
    output: OutputSettings = field(default_factory=OutputSettings)
    output_types: tuple[str, ...] = OUTPUT_TYPES

    @property
    def conventions(self) -> Conventions:
        return Conventions(self.output.identifier_system, self.output.content_hash_system)


@dataclass
class PatientOutcome:
    """What happened to one patient."""

    patient_id: str
    status: str  # written | unchanged | not-assessed | planned | failed
    read: bool = False
    assessed: bool = False
    stages: list[dict[str, Any]] = field(default_factory=list)
    plan: PatientPlan | None = None
    reason: str | None = None
    error: str | None = None
    replans: int = 0  # times another writer changed the outputs first, so the patient was planned again

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"patient": f"Patient/{self.patient_id}", "status": self.status,
                               "assessments": self.stages}
        if self.plan is not None:
            out["actions"] = self.plan.as_json()
        if self.reason:
            out["reason"] = self.reason
            out["error"] = self.error
        return out


def _stages(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"disorder": a.get("disorder"), "stage": a.get("stage"), "status": a.get("status"),
         "treatment_resistant": a.get("treatment_resistant")}
        for a in result.get("assessments") or []
    ]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ResponseError) and exc.messages:
        return f"HTTP {exc.status} from {exc.method} {exc.url.split('?')[0]}: " + "; ".join(exc.messages)
    return str(exc) or type(exc).__name__


class PatientSync:
    """The per-patient pipeline, shared by every worker thread (it holds no per-patient state)."""

    def __init__(self, client: FhirClient, caps: ServerCapabilities, terminology: Terminology,
                 config: SyncConfig, issued: datetime) -> None:
        self.client = client
        self.caps = caps
        self.terminology = terminology
        self.config = config
        self.issued = issued
        #: output types the server cannot search by patient: writing them would add a copy per run
        self.skip_types = frozenset(t for t in config.output_types if not searchable_by_patient(caps, t))
        self.read_types = tuple(t for t in config.output_types if t not in self.skip_types)

    def assess(self, patient_id: str, resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The patient's contract dict (an empty assessment list when nothing applies)."""
        reference = f"Patient/{patient_id}"
        for result in classify_resources(resources, self.terminology, self.config.as_of,
                                         source=reference):
            contract = dump_result(result)
            if contract.get("patient") == reference:
                return contract
        return {"patient": reference, "as_of": self.config.as_of.isoformat(), "assessments": [],
                "warnings": []}

    def plan(self, patient_id: str, contract: dict[str, Any]) -> PatientPlan:
        desired = build_transaction(contract, self.config.output, issued=self.issued)
        existing = read_outputs(self.client, self.caps, patient_id, self.read_types,
                                tag_system=self.config.output.codesystem, use_batch=not self.config.dry_run)
        flags = [r for r in existing if r.get("resourceType") == "Flag"]
        deactivated = plan_flag_deactivations(flags, desired, self.issued)
        return plan_patient(patient_id, desired, existing, deactivated, self.config.conventions,
                            self.skip_types)

    def apply(self, plan: PatientPlan) -> bool:
        """Send the plan as one transaction; False when there was nothing to send."""
        bundle = to_transaction(plan, self.caps, self.config.conventions)
        if bundle is None:
            return False
        self._commit(bundle)
        return True

    def _commit(self, bundle: dict[str, Any]) -> None:
        """Send one transaction; an entry answered with other than 2xx inside it is an error."""
        response = self.client.transaction(bundle)
        for i, entry in enumerate(response.get("entry") or []):
            status = str((entry.get("response") or {}).get("status", ""))
            if not status[:1] == "2":
                raise UnexpectedResponse(
                    f"transaction entry {i} answered {status!r} inside a successful transaction",
                    method="POST", url=self.client.base_url, status=200,
                )

    def __call__(self, patient_id: str) -> PatientOutcome:
        outcome = PatientOutcome(patient_id, FAILED)

        def read_and_assess() -> dict[str, Any]:
            record = fetch_patient(self.client, self.caps, patient_id, use_everything=self.config.use_everything)
            outcome.read = True
            return self.assess(patient_id, record.resources)

        return self.settle(outcome, read_and_assess, lambda contract, attempt: self.plan(patient_id, contract))

    def settle(self, outcome: PatientOutcome, contract_of: Callable[[], dict[str, Any]],
               plan_for: Callable[[dict[str, Any], int], PatientPlan]) -> PatientOutcome:
        """One patient's plan and apply: planned again after a lost race (up to REPLANS times); any
        failure but an authentication one becomes the outcome's reason, never the run's end."""
        try:
            contract = contract_of()
            outcome.stages = _stages(contract)
            outcome.assessed = bool(outcome.stages)
            for attempt in range(REPLANS + 1):
                plan = plan_for(contract, attempt)
                outcome.plan = plan
                if self.config.dry_run:
                    outcome.status = PLANNED if plan.writes else (UNCHANGED if outcome.assessed else NOT_ASSESSED)
                    break
                try:
                    written = self.apply(plan)
                except ResponseError as exc:
                    if attempt < REPLANS and _lost_race(exc):
                        outcome.replans += 1
                        continue  # another writer wrote this patient's outputs meanwhile: plan again
                    raise
                outcome.status = WRITTEN if written else (UNCHANGED if outcome.assessed else NOT_ASSESSED)
                break
        except AuthError:
            raise
        except (FhirtrdError, OutboundError) as exc:
            outcome.status, outcome.reason, outcome.error = FAILED, _reason(exc), type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - one patient's defect must not end the run
            outcome.status = FAILED
            outcome.reason = f"internal error: {type(exc).__name__}: {exc}"
            outcome.error = type(exc).__name__
        return outcome

@dataclass
class RunReport:
    """The machine-readable account of one run (``--report FILE``)."""

    run_id: str
    server: str
    selection: dict[str, Any]
    dry_run: bool
    as_of: str
    started: str
    high_water_mark: str
    resumed: bool = False
    finished: str | None = None
    complete: bool = False
    interrupted: bool = False
    skipped_done: int = 0
    outcomes: list[PatientOutcome] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)
    fatal: str | None = None
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        by = {s: sum(1 for o in self.outcomes if o.status == s)
              for s in (WRITTEN, UNCHANGED, NOT_ASSESSED, PLANNED, FAILED)}
        return {
            "selected": len(self.outcomes) + self.skipped_done,
            "skipped_already_done": self.skipped_done,
            "read": sum(1 for o in self.outcomes if o.read),
            "assessed": sum(1 for o in self.outcomes if o.assessed),
            "written": by[WRITTEN],
            "unchanged": by[UNCHANGED],
            "not_assessed": by[NOT_ASSESSED],
            "planned": by[PLANNED],
            "failed": by[FAILED],
        }

    def action_counts(self) -> dict[str, int]:
        totals = {"create": 0, "update": 0, "deactivate": 0, "unchanged": 0}
        for o in self.outcomes:
            if o.plan is not None:
                for kind, n in o.plan.counts().items():
                    totals[kind] += n
        return totals

    def requests_per_patient(self) -> float | None:
        """HTTP requests per processed patient, leaving out the once-per-run ones (metadata,
        server clock, patient selection)."""
        if not self.outcomes or not self.requests:
            return None
        by_kind = self.requests.get("by_kind", {})
        per_run = sum(by_kind.get(k, 0) for k in ("metadata", "clock", "select"))
        return (int(self.requests.get("total", 0)) - per_run) / len(self.outcomes)

    def replans(self) -> int:
        """Transactions refused because another writer got there first (each then planned again)."""
        return sum(o.replans for o in self.outcomes)

    @property
    def failed(self) -> list[PatientOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "server": self.server,
            "selection": self.selection,
            "dry_run": self.dry_run,
            "as_of": self.as_of,
            "started": self.started,
            "finished": self.finished,
            "high_water_mark": self.high_water_mark,
            "resumed": self.resumed,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "fatal": self.fatal,
            "warnings": self.warnings,
            "counts": self.counts(),
            "outputs": self.action_counts(),
            "replans": self.replans(),
            "requests": self.requests | {"per_patient": self.requests_per_patient()},
            "failures": [{"patient": f"Patient/{o.patient_id}", "reason": o.reason, "error": o.error}
                         for o in self.failed],
            "patients": [o.as_json() for o in self.outcomes],
        }

    def summary(self) -> str:
        c, a = self.counts(), self.action_counts()
        lines = [
            f"fhirtrd sync {'(dry run) ' if self.dry_run else ''}of {self.server}: "
            f"{c['selected']} patient(s) selected"
            + (f", {c['skipped_already_done']} already done in the interrupted run" if c["skipped_already_done"] else ""),
            f"  read {c['read']}, assessed {c['assessed']}, written {c['written']}, "
            f"unchanged {c['unchanged']}, not assessed {c['not_assessed']}"
            + (f", planned {c['planned']}" if self.dry_run else "") + f", failed {c['failed']}",
            f"  outputs: {a['create']} created, {a['update']} updated, {a['deactivate']} deactivated, "
            f"{a['unchanged']} unchanged" + (" (planned, nothing sent)" if self.dry_run else ""),
        ]
        if self.requests:
            lines.append(f"  HTTP requests: {self.requests.get('total', 0)} "
                         f"({self.requests.get('retries', 0)} retries)")
        if self.replans():
            lines.append(f"  {self.replans()} patient(s) planned again: another writer changed their outputs first")
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        for o in self.failed:
            lines.append(f"  failed Patient/{o.patient_id}: {o.reason}")
        if self.fatal:
            lines.append(f"  stopped: {self.fatal}")
        if self.interrupted:
            lines.append("  interrupted: run the same command again to resume")
        elif not self.complete and not self.dry_run:
            lines.append("  incomplete: the failed patients are tried again by the same command")
        return "\n".join(lines)


ProgressFn = Callable[[PatientOutcome, RunReport], None]


def _bounded(pool: ThreadPoolExecutor, work: Callable[[str], PatientOutcome], ids: Iterator[str],
             limit: int) -> Iterator[Future[PatientOutcome]]:
    """Yield futures as they finish, keeping at most ``limit`` submitted at a time."""
    pending: set[Future[PatientOutcome]] = set()
    try:
        for pid in ids:
            pending.add(pool.submit(work, pid))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from done
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from done
    finally:
        for future in pending:
            future.cancel()


def run_sync(
    client: FhirClient,
    selection: Selection,
    terminology: Terminology,
    config: SyncConfig,
    *,
    state: SyncState | None = None,
    progress: ProgressFn | None = None,
    caps: ServerCapabilities | None = None,
) -> RunReport:
    """Sync every selected patient; returns the report (also when interrupted: see ``interrupted``).

    A KeyboardInterrupt (Ctrl-C, or SIGTERM mapped to it by the CLI) stops the run: no new
    patient starts, those in flight finish (unrecorded: a resume finds their outputs unchanged),
    and the report says ``interrupted``. An authentication failure or a failed selection stops
    the run too (``fatal``). Neither is raised; the caller turns the report into an exit code.
    """
    caps = caps or client.capabilities()
    if not config.dry_run:
        caps.require_transactions()
    started_at = client.server_now()
    issued = datetime.now(UTC)
    report = RunReport(
        run_id=uuid.uuid4().hex,
        server=client.base_url,
        selection=selection.key,
        dry_run=config.dry_run,
        as_of=config.as_of.isoformat(),
        started=fhir_instant(issued),
        high_water_mark=fhir_instant(started_at),
    )
    if state is not None and not config.dry_run:
        report.resumed = state.begin(report.run_id, report.started, selection.key, report.high_water_mark)
        if report.resumed and state.current is not None:
            report.run_id = state.current.run_id
            report.high_water_mark = state.current.high_water_mark

    def todo() -> Iterator[str]:
        for pid in iter_patients(client, caps, selection):
            if state is not None and not config.dry_run and state.is_done(pid):
                report.skipped_done += 1
                continue
            yield pid

    work = PatientSync(client, caps, terminology, config, issued)
    for rtype in sorted(work.skip_types):
        report.warnings.append(
            f"the server cannot search {rtype} by patient (CapabilityStatement), so {rtype} outputs "
            "are not written: they could not be found again and would be duplicated on every run")
    workers = max(1, config.workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhirtrd-sync")
    try:
        for future in _bounded(pool, work, todo(), workers * 2):
            if future.cancelled():
                continue
            outcome = future.result()
            report.outcomes.append(outcome)
            if state is not None and not config.dry_run:
                state.record(outcome.patient_id, outcome.status,
                             outcome.reason if outcome.status == FAILED else None)
            if progress is not None:
                progress(outcome, report)
    except KeyboardInterrupt:
        report.interrupted = True
    except ServerError as exc:  # authentication, or the selection itself (search, Group read)
        report.fatal = f"{type(exc).__name__}: {_reason(exc)}"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        report.finished = fhir_instant(datetime.now(UTC))
        report.requests = {"total": client.stats.requests, "retries": client.stats.retries,
                           "by_kind": dict(client.stats.by_kind)}
        if state is not None and not config.dry_run and not report.interrupted and report.fatal is None:
            report.complete = state.finish(report.finished)
    return report
