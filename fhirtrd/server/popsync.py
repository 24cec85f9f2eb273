"""Write population results (``results.ndjson``) back to a FHIR server with the sync's planner and apply.

The outputs fhirtrd already wrote are read in bulk: one ``_tag``-filtered search per output type,
paged over the whole server (not one request per patient), grouped by the patient part of their
business identifier (``<patient>/<disorder>/<kind>``). Each patient's contract from
``results.ndjson`` becomes its transaction Bundle through ``fhirtrd.fhir.outbound`` exactly as in
``fhirtrd sync``; ``fhirtrd.server.plan`` plans it against the outputs read, and
``PatientSync.apply`` sends it as one transaction. A transaction refused because another writer got
there first is planned again from a fresh per-patient read. Progress goes to the sync's state file,
so a killed run, resumed, skips the patients done; one written but not yet recorded is found
unchanged by content hash and written no second time.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhirtrd.errors import FhirtrdError
from fhirtrd.fhir.outbound import build_transaction, is_fhirtrd_output, plan_flag_deactivations
from fhirtrd.fhir.outbound_errors import OutboundError
from fhirtrd.server.client import FhirClient, ServerCapabilities
from fhirtrd.server.errors import AuthError, ResponseError, ServerError
from fhirtrd.server.fetch import output_tag_param
from fhirtrd.server.plan import PatientPlan, business_identifier, plan_patient
from fhirtrd.server.state import SyncState, fhir_instant
from fhirtrd.server.sync import (
    FAILED,
    NOT_ASSESSED,
    REPLANS,
    UNCHANGED,
    WRITTEN,
    PatientOutcome,
    PatientSync,
    ProgressFn,
    RunReport,
    SyncConfig,
    _lost_race,
    _reason,
    _stages,
)

PAGE_SIZE = 500


def read_all_outputs(client: FhirClient, types: tuple[str, ...], tag_system: str,
                     page_size: int = PAGE_SIZE) -> dict[str, list[dict[str, Any]]]:
    """Every fhirtrd output of ``types`` on the server, by patient id (one paged search per type)."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for rtype in types:
        params = [("_tag", output_tag_param(tag_system)), ("_count", str(page_size))]
        for resource in client.search(rtype, params, kind="outputs"):
            if not is_fhirtrd_output(resource):
                continue
            ident = business_identifier(resource)
            if ident and "/" in ident:
                by_patient.setdefault(ident.split("/", 1)[0], []).append(resource)
    return by_patient


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


class PopulationSync(PatientSync):
    """The sync's per-patient plan and apply, fed by a contract and the outputs read in bulk."""

    def __init__(self, client: FhirClient, caps: ServerCapabilities, config: SyncConfig, issued: datetime,
                 existing: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(client, caps, None, config, issued)  # type: ignore[arg-type]  # never classifies
        self.existing = existing

    def plan_from(self, patient_id: str, contract: dict[str, Any], fresh: bool) -> PatientPlan:
        if fresh:  # after a lost race: read this patient's outputs again
            return self.plan(patient_id, contract)
        desired = build_transaction(contract, self.config.output, issued=self.issued)
        existing = self.existing.get(patient_id, [])
        flags = [r for r in existing if r.get("resourceType") == "Flag"]
        deactivated = plan_flag_deactivations(flags, desired, self.issued)
        return plan_patient(patient_id, desired, existing, deactivated, self.config.conventions, self.skip_types)

    def write(self, contract: dict[str, Any]) -> PatientOutcome:
        patient_id = str(contract["patient"]).removeprefix("Patient/")
        outcome = PatientOutcome(patient_id, FAILED, read=True)
        try:
            outcome.stages = _stages(contract)
            outcome.assessed = bool(outcome.stages)
            for attempt in range(REPLANS + 1):
                plan = self.plan_from(patient_id, contract, fresh=attempt > 0)
                outcome.plan = plan
                try:
                    written = self.apply(plan)
                except ResponseError as exc:
                    if attempt < REPLANS and _lost_race(exc):
                        outcome.replans += 1
                        continue
                    raise
                outcome.status = WRITTEN if written else (UNCHANGED if outcome.assessed else NOT_ASSESSED)
                break
        except AuthError:
            raise
        except (FhirtrdError, OutboundError) as exc:
            outcome.status, outcome.reason, outcome.error = FAILED, _reason(exc), type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - one patient's defect must not end the run
            outcome.status, outcome.error = FAILED, type(exc).__name__
            outcome.reason = f"internal error: {type(exc).__name__}: {exc}"
        return outcome


def run_population_sync(client: FhirClient, results: Path, config: SyncConfig, *,
                        state: SyncState | None = None, progress: ProgressFn | None = None) -> RunReport:
    """Write every patient of ``results`` (a results.ndjson) back; returns the sync's run report.

    Patients are written one transaction each, in file order; an interruption (KeyboardInterrupt)
    stops after the patient in flight, and the state file lets the same command resume.
    """
    caps = client.capabilities()
    caps.require_transactions()
    issued = datetime.now(UTC)
    key = selection_key(results)
    report = RunReport(run_id=uuid.uuid4().hex, server=client.base_url, selection=key, dry_run=False,
                       as_of=config.as_of.isoformat(), started=fhir_instant(issued),
                       high_water_mark=fhir_instant(client.server_now()))
    if state is not None:
        report.resumed = state.begin(report.run_id, report.started, key, report.high_water_mark)
        if report.resumed and state.current is not None:
            report.run_id, report.high_water_mark = state.current.run_id, state.current.high_water_mark
    try:
        probe = PopulationSync(client, caps, config, issued, {})
        existing = read_all_outputs(client, probe.read_types, config.output.codesystem)
        work = PopulationSync(client, caps, config, issued, existing)
        for rtype in sorted(work.skip_types):
            report.warnings.append(f"the server cannot search {rtype} by patient, so {rtype} outputs are not written")
        for number, contract, problem in iter_contracts(results):
            if contract is None:
                report.outcomes.append(PatientOutcome(f"line-{number}", FAILED, reason=problem, error="InputError"))
                if state is not None:
                    state.record(f"line-{number}", FAILED, problem)
                continue
            pid = str(contract["patient"]).removeprefix("Patient/")
            if state is not None and state.is_done(pid):
                report.skipped_done += 1
                continue
            outcome = work.write(contract)
            report.outcomes.append(outcome)
            if state is not None:
                state.record(pid, outcome.status, outcome.reason if outcome.status == FAILED else None)
            if progress is not None:
                progress(outcome, report)
    except KeyboardInterrupt:
        report.interrupted = True
    except ServerError as exc:
        report.fatal = f"{type(exc).__name__}: {_reason(exc)}"
    finally:
        report.finished = fhir_instant(datetime.now(UTC))
        report.requests = {"total": client.stats.requests, "retries": client.stats.retries,
                           "by_kind": dict(client.stats.by_kind)}
        if state is not None and not report.interrupted and report.fatal is None:
            report.complete = state.finish(report.finished)
    return report
