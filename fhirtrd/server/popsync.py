"""Write population results (``results.ndjson``) back to a FHIR server with the sync's planner and apply.

The outputs fhirtrd already wrote are read in bulk: one ``_tag``-filtered search per output type,
paged over the whole server (not one request per patient), and spilled page by page to an SQLite
file keyed by the patient part of their business identifier (``<patient>/<disorder>/<kind>``), in a
work directory beside the state file that is removed when the run ends, so memory stays flat
whatever the population. Each patient's contract from ``results.ndjson`` becomes its transaction
Bundle through ``fhirtrd.fhir.outbound`` exactly as in ``fhirtrd sync``; ``fhirtrd.server.plan``
plans it against that patient's outputs. The writes of up to ``batch_size`` patients go to the
server as one transaction; a refused batch (another writer got there first, or one entry the
server will not take) is written again patient by patient, each planned from a fresh read, so one
bad patient never sinks the others. Progress goes to the sync's state file after each committed
batch, so a killed run, resumed, skips the patients done; one written but not yet recorded is found
unchanged by content hash and written no second time. The report keeps counts, not one entry per
patient: only the failed patients are listed.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhirtrd.errors import FhirtrdError
from fhirtrd.fhir.outbound import build_transaction, is_fhirtrd_output, plan_flag_deactivations
from fhirtrd.fhir.outbound_errors import OutboundError
from fhirtrd.server.client import FhirClient, ServerCapabilities
from fhirtrd.server.errors import AuthError, ServerError
from fhirtrd.server.fetch import output_tag_param
from fhirtrd.server.plan import KINDS, PatientPlan, business_identifier, plan_patient, to_transaction
from fhirtrd.server.state import SyncState, fhir_instant
from fhirtrd.server.sync import (
    FAILED,
    NOT_ASSESSED,
    PLANNED,
    UNCHANGED,
    WRITTEN,
    PatientOutcome,
    PatientSync,
    RunReport,
    SyncConfig,
    _reason,
    _stages,
)

#: outputs per page of the bulk read (servers cap it: sekmet at 1,000; fewer pages, less server work)
PAGE_SIZE = 1000
#: patients per transaction by default (bench/population_sync.py: docs/population.md)
DEFAULT_BATCH_SIZE = 25
WORK_SUFFIX = ".work"
_SPILL_ROWS = 1000


class OutputStore:
    """fhirtrd outputs read from the server, kept on disk in SQLite by patient id (flat memory)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / "outputs.sqlite"
        self.path.unlink(missing_ok=True)  # left by a killed run: the server is read again anyway
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE outputs (patient TEXT NOT NULL, body BLOB NOT NULL)")
        self.count = 0
        self._indexed = False

    def add(self, rows: Sequence[tuple[str, bytes]]) -> None:
        self.db.executemany("INSERT INTO outputs VALUES (?, ?)", rows)
        self.count += len(rows)

    def get(self, patient_id: str) -> list[dict[str, Any]]:
        """The outputs of one patient as read (an empty list when there are none)."""
        if not self._indexed:
            self.db.execute("CREATE INDEX outputs_patient ON outputs (patient)")
            self.db.commit()
            self._indexed = True
        rows = self.db.execute("SELECT body FROM outputs WHERE patient = ?", (patient_id,))
        return [orjson.loads(body) for (body,) in rows]

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


def read_all_outputs(client: FhirClient, types: tuple[str, ...], tag_system: str, store: OutputStore,
                     page_size: int = PAGE_SIZE) -> int:
    """Spill every fhirtrd output of ``types`` on the server into ``store`` (one paged search per type)."""
    rows: list[tuple[str, bytes]] = []
    for rtype in types:
        params = [("_tag", output_tag_param(tag_system)), ("_count", str(page_size))]
        for resource in client.search(rtype, params, kind="outputs"):
            if not is_fhirtrd_output(resource):
                continue
            ident = business_identifier(resource)
            if ident and "/" in ident:
                rows.append((ident.split("/", 1)[0], orjson.dumps(resource)))
                if len(rows) >= _SPILL_ROWS:
                    store.add(rows)
                    rows = []
    store.add(rows)
    return store.count


def iter_contracts(results: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, contract, problem) per line of ``results.ndjson``; a bad line names its problem."""
    with results.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                contract = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, None, f"{results.name} line {number}: not JSON: {exc}"
                continue
            patient = contract.get("patient") if isinstance(contract, dict) else None
            if not (isinstance(patient, str) and patient.startswith("Patient/") and len(patient) > 8):
                yield number, None, f"{results.name} line {number}: patient: not a Patient/<id> reference"
                continue
            yield number, contract, None


def selection_key(results: Path) -> dict[str, Any]:
    """What the state file remembers of the run: the results file by path, size and first bytes."""
    stat = results.stat()
    with results.open("rb") as fh:
        head = hashlib.sha256(fh.read(1 << 16)).hexdigest()
    return {"mode": "population", "results": str(results.resolve()), "size": stat.st_size, "head": head}


def _patient_of(contract: dict[str, Any]) -> str:
    return str(contract["patient"]).removeprefix("Patient/")


def merge_plans(bundles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several patients' plan transactions as one; an entry shared by fullUrl (the Device) goes once."""
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    for bundle in bundles:
        for entry in bundle.get("entry") or []:
            full_url = entry.get("fullUrl")
            if full_url in seen:
                continue
            seen.add(full_url)
            entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


class PopulationSync(PatientSync):
    """The sync's per-patient plan and apply, fed by a contract and the outputs read in bulk."""

    def __init__(self, client: FhirClient, caps: ServerCapabilities, config: SyncConfig, issued: datetime,
                 existing: Callable[[str], list[dict[str, Any]]]) -> None:
        super().__init__(client, caps, None, config, issued)  # type: ignore[arg-type]  # never classifies
        self.existing = existing
        self.batches = 0
        self.refused = 0

    def plan_from(self, patient_id: str, contract: dict[str, Any], fresh: bool) -> PatientPlan:
        if fresh:  # after a lost race or a refused batch: read this patient's outputs again
            return self.plan(patient_id, contract)
        desired = build_transaction(contract, self.config.output, issued=self.issued)
        existing = self.existing(patient_id)
        flags = [r for r in existing if r.get("resourceType") == "Flag"]
        deactivated = plan_flag_deactivations(flags, desired, self.issued)
        return plan_patient(patient_id, desired, existing, deactivated, self.config.conventions, self.skip_types)

    def write(self, contract: dict[str, Any], fresh: bool = False) -> PatientOutcome:
        """One patient, one transaction (planned from a fresh read when ``fresh``)."""
        patient_id = _patient_of(contract)
        return self.settle(PatientOutcome(patient_id, FAILED, read=True), lambda: contract,
                           lambda c, attempt: self.plan_from(patient_id, c, fresh=fresh or attempt > 0))

    def write_batch(self, contracts: Sequence[dict[str, Any]]) -> list[PatientOutcome]:
        """Plan each patient; send every write of the batch as one transaction.

        A refused transaction changed nothing (it is atomic), so each of its patients is then
        written alone through ``write``, planned from a fresh read: a lost race is planned again,
        and a patient whose entry the server will not take fails alone, with the server's reason.
        """
        if len(contracts) == 1:
            return [self.write(contracts[0])]
        outcomes: list[PatientOutcome] = []
        pending: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for contract in contracts:
            outcome = PatientOutcome(_patient_of(contract), FAILED, read=True)
            outcomes.append(outcome)
            try:
                outcome.stages = _stages(contract)
                outcome.assessed = bool(outcome.stages)
                outcome.plan = self.plan_from(outcome.patient_id, contract, fresh=False)
                bundle = to_transaction(outcome.plan, self.caps, self.config.conventions)
            except (FhirtrdError, OutboundError) as exc:
                outcome.reason, outcome.error = _reason(exc), type(exc).__name__
                continue
            except Exception as exc:  # noqa: BLE001 - one patient's defect must not end the run
                outcome.error = type(exc).__name__
                outcome.reason = f"internal error: {type(exc).__name__}: {exc}"
                continue
            if bundle is None:
                outcome.status = UNCHANGED if outcome.assessed else NOT_ASSESSED
            else:
                pending.append((len(outcomes) - 1, contract, bundle))
        if not pending:
            return outcomes
        self.batches += 1
        try:
            self._commit(merge_plans([bundle for _, _, bundle in pending]))
        except AuthError:
            raise
        except ServerError:
            self.refused += 1
            for index, contract, _ in pending:
                outcomes[index] = self.write(contract, fresh=True)
            return outcomes
        for index, _, _ in pending:
            outcomes[index].status = WRITTEN
        return outcomes


@dataclass
class PopulationReport(RunReport):
    """The sync's run report with counts instead of one outcome per patient: ``outcomes`` holds
    only the failed patients, so memory does not grow with the population."""

    batch_size: int = 1
    batches: int = 0  # transactions sent with several patients' writes
    batches_refused: int = 0  # of those, refused and written patient by patient
    processed: int = 0
    tally: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    replanned: int = 0

    def add(self, outcome: PatientOutcome) -> None:
        """Count one finished patient; keep it only when it failed."""
        self.processed += 1
        self.tally[outcome.status] += 1
        self.tally["read"] += outcome.read
        self.tally["assessed"] += outcome.assessed
        if outcome.plan is not None:
            self.actions.update(outcome.plan.counts())
        self.replanned += outcome.replans
        if outcome.status == FAILED:
            self.outcomes.append(outcome)

    def counts(self) -> dict[str, int]:
        t = self.tally
        return {
            "selected": self.processed + self.skipped_done,
            "skipped_already_done": self.skipped_done,
            "read": t["read"],
            "assessed": t["assessed"],
            "written": t[WRITTEN],
            "unchanged": t[UNCHANGED],
            "not_assessed": t[NOT_ASSESSED],
            "planned": t[PLANNED],
            "failed": t[FAILED],
        }

    def action_counts(self) -> dict[str, int]:
        return {kind: self.actions[kind] for kind in KINDS}

    def requests_per_patient(self) -> float | None:
        if not self.processed or not self.requests:
            return None
        by_kind = self.requests.get("by_kind", {})
        per_run = sum(by_kind.get(k, 0) for k in ("metadata", "clock", "select", "outputs"))
        return (int(self.requests.get("total", 0)) - per_run) / self.processed

    def replans(self) -> int:
        return self.replanned

    def as_json(self) -> dict[str, Any]:
        doc = super().as_json()  # "patients" lists the failed ones only
        doc["batches"] = {"batch_size": self.batch_size, "sent": self.batches, "refused": self.batches_refused}
        return doc

    def summary(self) -> str:
        lines = super().summary().split("\n")
        if self.batches:
            lines.insert(3, f"  {self.batches} transaction(s) of up to {self.batch_size} patients"
                            + (f", {self.batches_refused} refused and written patient by patient"
                               if self.batches_refused else ""))
        return "\n".join(lines)


PopulationProgressFn = Callable[[PatientOutcome, PopulationReport], None]


def work_dir_for(state: SyncState | None) -> Path:
    """Where the outputs read are spilled: beside the state file (else a temporary directory)."""
    if state is None:
        return Path(tempfile.mkdtemp(prefix="fhirtrd-population-sync-"))
    return state.path.with_name(state.path.name + WORK_SUFFIX)


def run_population_sync(client: FhirClient, results: Path, config: SyncConfig, *,
                        state: SyncState | None = None, progress: PopulationProgressFn | None = None,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> PopulationReport:
    """Write every patient of ``results`` (a results.ndjson) back; returns the run report.

    Patients go in file order, ``batch_size`` to a transaction; an interruption (KeyboardInterrupt)
    stops after the batch in flight (recorded only when it committed), and the state file lets the
    same command resume.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    caps = client.capabilities()
    caps.require_transactions()
    issued = datetime.now(UTC)
    key = selection_key(results)
    report = PopulationReport(run_id=uuid.uuid4().hex, server=client.base_url, selection=key, dry_run=False,
                              as_of=config.as_of.isoformat(), started=fhir_instant(issued),
                              high_water_mark=fhir_instant(client.server_now()), batch_size=batch_size)
    if state is not None:
        report.resumed = state.begin(report.run_id, report.started, key, report.high_water_mark)
        if report.resumed and state.current is not None:
            report.run_id, report.high_water_mark = state.current.run_id, state.current.high_water_mark
    workdir = work_dir_for(state)
    store = OutputStore(workdir)
    work = PopulationSync(client, caps, config, issued, store.get)

    def finish(outcomes: Sequence[PatientOutcome], through: int | None) -> None:
        """Report a committed batch (or a bad line); the state file moves to its last line."""
        if state is not None:
            state.record_through(through, [(o.patient_id, o.reason or o.status) for o in outcomes
                                           if o.status == FAILED])
        for outcome in outcomes:
            report.add(outcome)
            if progress is not None:
                progress(outcome, report)

    try:
        read_all_outputs(client, work.read_types, config.output.codesystem, store)
        for rtype in sorted(work.skip_types):
            report.warnings.append(f"the server cannot search {rtype} by patient, so {rtype} outputs are not written")
        batch: list[dict[str, Any]] = []
        in_batch: set[str] = set()
        last = 0  # the line of the batch's last patient
        for number, contract, problem in iter_contracts(results):
            if contract is None:  # named now; the mark moves past it with the next batch
                finish([PatientOutcome(f"line-{number}", FAILED, reason=problem, error="InputError")], None)
                continue
            pid = _patient_of(contract)
            if state is not None and state.is_done_through(number, pid):
                report.skipped_done += 1
                continue
            if pid in in_batch:  # the same patient twice: the second is planned after the first is written
                finish(work.write_batch(batch), last)
                batch, in_batch = [], set()
            batch.append(contract)
            in_batch.add(pid)
            last = number
            if len(batch) >= batch_size:
                finish(work.write_batch(batch), last)
                batch, in_batch = [], set()
        if batch:
            finish(work.write_batch(batch), last)
    except KeyboardInterrupt:
        report.interrupted = True
    except ServerError as exc:
        report.fatal = f"{type(exc).__name__}: {_reason(exc)}"
    finally:
        store.close()
        try:
            workdir.rmdir()  # only when empty: nothing but the spill file was put there
        except OSError:
            pass
        report.batches, report.batches_refused = work.batches, work.refused
        report.finished = fhir_instant(datetime.now(UTC))
        report.requests = {"total": client.stats.requests, "retries": client.stats.retries,
                           "by_kind": dict(client.stats.by_kind)}
        if state is not None and not report.interrupted and report.fatal is None:
            report.complete = state.finish(report.finished)
    return report
