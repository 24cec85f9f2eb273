"""`fhirtrd sync` as a user runs it: exit codes, the summary, the JSON run report, --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from fhirtrd.cli import main

from .conftest import FhirServer
from .patients import BUPROPION, SERTRALINE, mdd_patient, post_bundle, transaction


def test_usage_error_names_what_is_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["sync", "--server", "http://127.0.0.1:9/fhir", "--state", str(tmp_path / "s.json")])

    assert code == 2
    assert "choose the patients" in capsys.readouterr().err


@pytest.mark.server
def test_sync_prints_a_summary_and_writes_the_run_report(
        fhir_server: FhirServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    post_bundle(requests.Session(), fhir_server.base_url, transaction(mdd_patient("cli-a", [SERTRALINE, BUPROPION])))
    base = ["sync", "--server", fhir_server.base_url, "--patient", "cli-a", "--as-of", "2024-06-01",
            "--state", str(tmp_path / "state.json")]

    dry = main([*base, "--dry-run"])
    out = capsys.readouterr()
    assert dry == 0
    assert "Patient/cli-a: create" in out.out and "cli-a/mdd/flag/treatment-resistant-depression" in out.out

    code = main([*base, "--report", str(tmp_path / "report.json")])

    assert code == 0
    assert "written 1" in capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["written"] == 1 and report["complete"] is True
    assert report["patients"][0]["assessments"][0]["stage"] == "II"
    assert json.loads((tmp_path / "state.json").read_text())["last_complete"]["high_water_mark"].endswith("Z")


@pytest.mark.server
def test_a_failed_patient_gives_a_non_zero_exit_and_its_reason(
        fhir_server: FhirServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sync", "--server", fhir_server.base_url, "--patient", "no-such-patient",
                 "--state", str(tmp_path / "state.json")])

    assert code == 1
    assert "failed Patient/no-such-patient: HTTP 404" in capsys.readouterr().err


