"""Syncs of the same patients at once, as separate processes: no duplicates, no redundant versions.

Issue 9 item 7 (two syncs at once wrote 54 redundant versions) and HAPI's conditional-create race
(hapi-fhir#3141): every writer is a real `fhirtrd sync` process against a real server, and the
result is counted on the server, not in fhirtrd's report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from fhirtrd.server.fetch import output_tag_param

from .conftest import FhirServer
from .patients import BUPROPION, ESCITALOPRAM, SERTRALINE, mdd_patient, post_bundle, transaction

pytestmark = pytest.mark.server
IDENT = "http://fhirtrd.org/fhir/identifier"


def outputs_on_server(server: FhirServer, pids: list[str]) -> list[dict[str, Any]]:
    """Every fhirtrd output of the patients, read straight from the server."""
    types = ["Observation", "Flag"] + (["RiskAssessment"] if server.searches_risk_assessment else [])
    found: list[dict[str, Any]] = []
    for pid in pids:
        for rtype in types:
            r = requests.get(f"{server.base_url}/{rtype}", timeout=60,
                             headers={"Cache-Control": "no-cache"},
                             params={"patient": f"Patient/{pid}", "_tag": output_tag_param(), "_count": "500"})
            r.raise_for_status()
            found += [e["resource"] for e in r.json().get("entry", [])
                      if e.get("search", {}).get("mode", "match") == "match"]
    return found


def identifier(resource: dict[str, Any]) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == IDENT)


def run_writers(server: FhirServer, pids: list[str], writers: int, tmp_path: Path) -> list[dict[str, Any]]:
    """Start `writers` sync processes on the same patients at once; their JSON reports."""
    args = [a for pid in pids for a in ("--patient", pid)]
    procs = []
    for n in range(writers):
        report = tmp_path / f"report-{n}.json"
        procs.append((report, subprocess.Popen(
            [sys.executable, "-m", "fhirtrd", "sync", "--server", server.base_url, *args,
             "--as-of", "2024-06-01", "--no-state", "--workers", "2", "--rate", "0", "--report", str(report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    reports = []
    for report, proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"a sync process failed ({proc.returncode}): {err.decode()[-2000:]}"
        reports.append(json.loads(report.read_text()))
    return reports


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_syncs_write_each_output_once_in_one_version(
        fhir_server: FhirServer, tmp_path: Path, writers: int) -> None:
    pids = [f"race{writers}-{i}" for i in range(4)]
    drugs = [[SERTRALINE], [SERTRALINE, BUPROPION], [ESCITALOPRAM, SERTRALINE], [BUPROPION]]
    for pid, trials in zip(pids, drugs, strict=True):
        post_bundle(requests.Session(), fhir_server.base_url, transaction(mdd_patient(pid, trials)))

    reports = run_writers(fhir_server, pids, writers, tmp_path)

    found = outputs_on_server(fhir_server, pids)
    per_identifier = Counter((r["resourceType"], identifier(r)) for r in found)
    versions = Counter(str(r["meta"]["versionId"]) for r in found)
    print(f"{fhir_server.kind}, {writers} writers: {len(per_identifier)} outputs, "
          f"{sum(per_identifier.values())} resources, versions {dict(versions)}, "
          f"replans {[r.get('replans') for r in reports]}")
    assert len(per_identifier) >= 3 * len(pids)  # at least an assessment, a trial and a flag each
    assert {key: n for key, n in per_identifier.items() if n > 1} == {}  # no duplicates
    assert versions == {"1": len(found)}  # nobody rewrote what another writer had just written
    assert all(r["counts"]["failed"] == 0 for r in reports)
    # every patient was written by some writer; the others found it done or lost a race and re-planned
    written = Counter(p["patient"] for r in reports for p in r["patients"] if p["status"] == "written")
    assert set(written) <= {f"Patient/{pid}" for pid in pids}
    assert sum(r["counts"]["unchanged"] + r["counts"]["written"] for r in reports) == writers * len(pids)
