"""`fhirtrd population-sync` against a real FHIR server (sekmet): batched write-back, re-run, kill and
resume, a batch the server refuses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhirtrd.fhir.outbound import OutputSettings, build_transaction
from fhirtrd.server.fetch import OUTPUT_TYPES, output_tag_param
from fhirtrd.server.plan import business_identifier
from tests.sync.conftest import FhirServer, start_sekmet, stop_server

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "population.md"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture
def sekmet(tmp_path: Path) -> Iterator[FhirServer]:
    workdir = tmp_path / "sekmet"
    workdir.mkdir()
    server = start_sekmet(workdir)
    try:
        yield server
    finally:
        stop_server(server)


def _population(tmp_path: Path) -> Path:
    out = tmp_path / "population-out"
    done = subprocess.run(["fhirtrd", "population", str(REPO_ROOT / "samples"), "--out", str(out),
                           "--as-of", "2025-01-15", "--fhir"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def _sync(results: Path, server: FhirServer, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["fhirtrd", "population-sync", "--server", server.base_url, "--results", str(results),
                           "--state", str(state), "--rate", "0", "--report", "-", *extra],
                          env=ENV, capture_output=True, text=True, timeout=600)


def _outputs_on_server(server: FhirServer) -> list[dict[str, Any]]:
    session = server.session()
    found: list[dict[str, Any]] = []
    for rtype in OUTPUT_TYPES:
        url: str | None = f"{server.base_url}/{rtype}"
        params: dict[str, str] | None = {"_tag": output_tag_param(), "_count": "1000"}
        while url:
            bundle = session.get(url, params=params, timeout=60).json()
            found.extend(e["resource"] for e in bundle.get("entry") or [])
            url = next((link["url"] for link in bundle.get("link") or [] if link["relation"] == "next"), None)
            params = None
    return found


def _types(server: FhirServer) -> tuple[str, ...]:
    """The output types written there (sekmet cannot search RiskAssessment by patient: not written)."""
    return tuple(t for t in OUTPUT_TYPES if t != "RiskAssessment" or server.searches_risk_assessment)


def _expected_identifiers(results: Path, server: FhirServer) -> Counter[tuple[str, str]]:
    """(type, identifier) of every patient output the write-back builder makes of the results."""
    wanted: Counter[tuple[str, str]] = Counter()
    for line in results.read_text().splitlines():
        bundle = build_transaction(json.loads(line), OutputSettings())
        for entry in bundle["entry"]:
            rtype, ident = entry["resource"]["resourceType"], business_identifier(entry["resource"])
            if rtype in _types(server) and ident:
                wanted[(rtype, ident)] += 1
    return wanted


def _on_server(server: FhirServer) -> Counter[tuple[str, str]]:
    return Counter((r["resourceType"], business_identifier(r) or "") for r in _outputs_on_server(server))


def test_write_back_then_rerun_writes_nothing(tmp_path: Path, sekmet: FhirServer) -> None:
    out = _population(tmp_path)
    state = tmp_path / "state.json"
    first = _sync(out, sekmet, state)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    wanted = _expected_identifiers(out / "results.ndjson", sekmet)
    assert wanted and _on_server(sekmet) == wanted  # every output, once
    assert report["outputs"]["create"] == sum(wanted.values())
    # the outputs were read in bulk: one search per output type, not one request per patient
    assert report["requests"]["by_kind"]["outputs"] == len(_types(sekmet))
    assert any("RiskAssessment" in w for w in report["warnings"]) != sekmet.searches_risk_assessment
    contracts = [json.loads(line) for line in (out / "results.ndjson").read_text().splitlines()]
    assert report["counts"]["written"] == sum(1 for c in contracts if c["assessments"])
    # every patient's writes went in one transaction (8 patients, batch size 25), not one per patient
    assert report["requests"]["by_kind"]["transaction"] == 1
    assert report["batches"] == {"batch_size": 25, "sent": 1, "refused": 0}
    assert report["patients"] == [] and report["failures"] == []  # counts, not one entry per patient
    assert not (tmp_path / "state.json.work").exists()  # the spill of the outputs read is removed

    again = _sync(out, sekmet, state)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["counts"]["written"] == 0
    assert second["outputs"]["create"] == second["outputs"]["update"] == 0
    assert second["outputs"]["unchanged"] == sum(wanted.values())
    assert "transaction" not in second["requests"]["by_kind"]
    assert _on_server(sekmet) == wanted
    assert {r["meta"]["versionId"] for r in _outputs_on_server(sekmet)} == {"1"}  # no new version either


def _many_patients(out: Path, copies: int) -> Path:
    """results.ndjson with each sample patient copied ``copies`` times under new ids."""
    lines = (out / "results.ndjson").read_text().splitlines()
    big = out.parent / "many"
    big.mkdir()
    with (big / "results.ndjson").open("w") as fh:
        for n in range(copies):
            for line in lines:
                contract = json.loads(line)
                pid = contract["patient"].removeprefix("Patient/")
                text = re.sub(rf"\bPatient/{re.escape(pid)}\b", f"Patient/{pid}-{n}", line)
                fh.write(text + "\n")
    return big


def test_a_killed_run_resumed_writes_each_output_exactly_once(tmp_path: Path, sekmet: FhirServer) -> None:
    big = _many_patients(_population(tmp_path), 40)
    wanted = _expected_identifiers(big / "results.ndjson", sekmet)
    patients = len((big / "results.ndjson").read_text().splitlines())
    state = tmp_path / "state.json"
    process = subprocess.Popen(["fhirtrd", "population-sync", "--server", sekmet.base_url, "--results", str(big),
                                "--state", str(state), "--rate", "0", "--batch-size", "20"], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    done = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            done = json.loads(state.read_text())["current"].get("through_line", 0)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            done = 0
        if done >= 40:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    partial = _on_server(sekmet)
    assert 0 < sum(partial.values()) < sum(wanted.values())  # killed mid-run
    recorded = json.loads(state.read_text())["current"]
    assert recorded["through_line"] % 20 == 0  # a whole batch at a time, after it commits
    assert recorded["done"] == {} and recorded["failed"] == {}  # a line mark: small whatever the population

    resumed = _sync(big, sekmet, state, "--batch-size", "20")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["resumed"] is True and report["complete"] is True
    assert report["counts"]["skipped_already_done"] >= done
    assert report["counts"]["selected"] == patients
    assert report["batches"]["sent"] >= 1 and report["batches"]["refused"] == 0
    on_server = _on_server(sekmet)
    assert on_server == wanted  # exactly one of each output per identifier
    assert set(on_server.values()) == {1}
    assert {r["meta"]["versionId"] for r in _outputs_on_server(sekmet)} == {"1"}  # nothing written twice


def test_a_bad_line_is_named_and_the_others_are_written(tmp_path: Path, sekmet: FhirServer) -> None:
    out = _population(tmp_path)
    results = out / "results.ndjson"
    wanted = _expected_identifiers(results, sekmet)
    lines = results.read_text().splitlines()
    results.write_text("\n".join([lines[0], "{not json", '{"patient": 7}', *lines[1:]]) + "\n")
    done = _sync(out, sekmet, tmp_path / "state.json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    reasons = [f["reason"] for f in report["failures"]]
    assert any("results.ndjson line 2: not JSON" in r for r in reasons)
    assert any("results.ndjson line 3: patient: not a Patient/<id> reference" in r for r in reasons)
    assert _on_server(sekmet) == wanted


def test_a_patient_whose_entry_the_server_refuses_is_named_and_the_rest_of_its_batch_is_written(
        tmp_path: Path, sekmet: FhirServer) -> None:
    out = _population(tmp_path)
    results = out / "results.ndjson"
    contracts = [json.loads(line) for line in results.read_text().splitlines()]
    bad = next(c for c in contracts if c["assessments"])
    bad_id = bad["patient"].removeprefix("Patient/")
    # two untagged copies of one of its outputs (a careless copy by another tool): the bulk read does
    # not see them (no fhirtrd tag), and the create guarded by ifNoneExist=identifier now matches two
    # resources, which the server refuses (412): the whole batch's transaction is refused
    observation = next(e["resource"] for e in build_transaction(bad, OutputSettings())["entry"]
                       if e["resource"]["resourceType"] == "Observation")
    observation = {k: v for k, v in observation.items() if k not in ("id", "meta")}
    session = sekmet.session()
    for _ in range(2):
        created = session.post(f"{sekmet.base_url}/Observation", json=observation,
                               headers={"Content-Type": "application/fhir+json"}, timeout=30)
        assert created.status_code == 201, created.text
    wanted = _expected_identifiers(results, sekmet)

    done = _sync(out, sekmet, tmp_path / "state.json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["batches"] == {"batch_size": 25, "sent": 1, "refused": 1}
    assert [f["patient"] for f in report["failures"]] == [f"Patient/{bad_id}"]
    assert "412" in report["failures"][0]["reason"]
    assert f"failed Patient/{bad_id}: HTTP 412" in done.stderr
    others = Counter({k: n for k, n in wanted.items() if not k[1].startswith(f"{bad_id}/")})
    assert _on_server(sekmet) == others  # the others of its batch are written, each once
    assert report["counts"]["written"] == sum(1 for c in contracts if c["assessments"]) - 1


def _documented() -> list[str]:
    section = DOC.read_text().split("## Writing the results back: `fhirtrd population-sync`", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_the_documented_commands_run_as_written(tmp_path: Path, sekmet: FhirServer) -> None:
    (tmp_path / "samples").symlink_to(REPO_ROOT / "samples")
    commands = _documented()
    assert len(commands) == 3
    env = {**ENV, "FHIRTRD_SERVER": sekmet.base_url}
    runs = [subprocess.run(["bash", "-c", c], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            for c in commands]
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    wanted = _expected_identifiers(tmp_path / "population-out" / "results.ndjson", sekmet)
    assert _on_server(sekmet) == wanted
    assert f"outputs: {sum(wanted.values())} created" in runs[1].stderr
    assert "1 transaction(s) of up to 25 patients" in runs[1].stderr  # the eight patients in one transaction
    assert "written 0" in runs[2].stderr and f"{sum(wanted.values())} unchanged" in runs[2].stderr
