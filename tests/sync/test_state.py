"""The state file: what a user sees when it is wrong, and how a failed run is kept for a retry."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhirtrd.server.errors import StateFileError
from fhirtrd.server.state import SyncState


def test_a_state_file_of_another_server_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SyncState(path, "https://a.example/fhir")
    state.begin("r1", "2024-06-01T00:00:00.000Z", {"mode": "all"}, "2024-06-01T00:00:00.000Z")

    with pytest.raises(StateFileError, match="belongs to 'https://a.example/fhir'"):
        SyncState(path, "https://b.example/fhir")


def test_a_corrupt_state_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")

    with pytest.raises(StateFileError, match=str(path)):
        SyncState(path, "https://a.example/fhir")


def test_a_run_with_failures_keeps_its_mark_back_and_retries_only_the_failed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SyncState(path, "https://a.example/fhir")
    state.begin("r1", "t", {"mode": "all"}, "2024-06-01T00:00:00.000Z")
    state.record("p1", "written")
    state.record("p2", "failed", "HTTP 422: Flag.status is required")

    assert state.finish("t2") is False
    again = SyncState(path, "https://a.example/fhir")
    assert again.high_water_mark is None
    assert again.begin("r2", "t3", {"mode": "all"}, "2024-06-02T00:00:00.000Z") is True
    assert again.is_done("p1") and not again.is_done("p2")
    again.record("p2", "written")
    assert again.finish("t4") is True
    assert SyncState(path, "https://a.example/fhir").high_water_mark == "2024-06-01T00:00:00.000Z"


def test_a_population_run_keeps_a_line_mark_and_retries_the_failed_lines_before_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = SyncState(path, "https://a.example/fhir")
    state.begin("r1", "t", {"mode": "population"}, "2024-06-01T00:00:00.000Z")
    state.record_through(25, [("p7", "HTTP 412: two Flags with one identifier")])
    state.record_through(50, [])
    assert state.finish("t2") is False  # p7 failed: the run is not complete
    assert path.stat().st_size < 1000  # 50 patients done, none of them listed

    again = SyncState(path, "https://a.example/fhir")
    assert again.begin("r2", "t3", {"mode": "population"}, "2024-06-02T00:00:00.000Z") is True
    assert again.is_done_through(3, "p3") and again.is_done_through(50, "p50")
    assert not again.is_done_through(7, "p7")  # failed: tried again
    assert not again.is_done_through(51, "p51")  # after the mark
    again.record_through(51, [])
    assert again.finish("t4") is True
