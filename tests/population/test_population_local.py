"""`fhirtrd population` gives exactly what `fhirtrd classify` gives, from buckets on disk and many processes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.population import generate
from fhirtrd.cli import main
from fhirtrd.population.engine import Settings, run_local

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"
AS_OF = date(2025, 6, 30)


def _classify(paths: list[Path], *args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["classify", *map(str, paths), "--as-of", AS_OF.isoformat(), "--format", "json", "--no-progress",
                 *args], out, err)
    return code, json.loads(out.getvalue()), err.getvalue()


def _digest(lines: list[bytes]) -> str:
    return hashlib.sha256(b"".join(lines)).hexdigest()


def _warnings(path: Path) -> list[str]:
    return sorted(orjson.dumps(json.loads(line), option=orjson.OPT_SORT_KEYS).decode()
                  for line in path.read_text().splitlines())


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 120-patient Bulk Data style export (one NDJSON per type) of the benchmark generator."""
    out = tmp_path_factory.mktemp("export")
    generate(out, 120, 5, AS_OF)
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_population_results_have_the_same_digest_as_classify(export: Path, tmp_path: Path, workers: int) -> None:
    code, expected, _ = _classify([export])
    # Small chunks and few buckets: files are cut mid-way and many patients share a bucket.
    done = run_local([export], tmp_path, Settings(as_of=AS_OF), workers=workers, buckets=5, chunk_bytes=1 << 20)

    got = (tmp_path / "results.ndjson").read_bytes().splitlines(keepends=True)
    assert code == 0
    assert len(got) == len(expected["results"]) == 120
    assert _digest(got) == _digest([orjson.dumps(r) + b"\n" for r in expected["results"]])
    assert done.skipped_unparsed > done.lines // 2  # most lines were never parsed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["patients"] == 120
    tr = sum(1 for r in expected["results"] for a in r["assessments"] if a["treatment_resistant"])
    assert sum(summary["treatment_resistant"].values()) == tr


def test_bundles_and_bad_input_are_reported_like_classify_and_lose_nothing(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for sample in sorted(SAMPLES.glob("*.json")):
        (inputs / sample.name).write_bytes(sample.read_bytes())
    bundle = json.loads((SAMPLES / "mdd-stage-ii-sertraline-then-venlafaxine.json").read_text())
    lines = [json.dumps(e["resource"]) for e in bundle["entry"]]
    lines.insert(2, '{"resourceType": "Condition", "subject": ')  # cut in the middle
    lines.insert(3, '{"no": "resourceType"}')
    lines.append(json.dumps({"resourceType": "Condition", "id": "orphan", "code": bundle["entry"][1]["resource"].get("code")}))
    (inputs / "copy.ndjson").write_text("\n".join(lines) + "\n")
    (inputs / "broken.ndjson.gz").write_bytes(gzip.compress(b'{"resourceType": "Patient", "id": "x"}\n')[:-8])
    (inputs / "empty.json").write_text("")

    code, expected, _ = _classify([inputs])
    err = io.StringIO()
    pcode = main(["population", str(inputs), "--out", str(tmp_path / "out"), "--as-of", AS_OF.isoformat(),
                  "--workers", "2"], io.StringIO(), err)

    assert code == pcode == 1  # unreadable inputs, the rest classified
    assert "broken.ndjson.gz" in err.getvalue() and "empty.json" in err.getvalue()
    got = [json.loads(line) for line in (tmp_path / "out" / "results.ndjson").read_text().splitlines()]
    assert got == expected["results"]
    assert _warnings(tmp_path / "out" / "warnings.ndjson") == sorted(
        orjson.dumps(w, option=orjson.OPT_SORT_KEYS).decode() for w in expected["warnings"])
    messages = " ".join(w["message"] + " " + w["source"] for w in expected["warnings"])
    assert "copy.ndjson:3" in messages and "not valid JSON" in messages and "no resourceType" in messages


def test_a_file_cut_into_chunks_names_its_lines_as_classify_does(tmp_path: Path) -> None:
    """Chunks are split without counting the lines before them; warnings still name the file's line."""
    bundle = json.loads((SAMPLES / "mdd-stage-ii-sertraline-then-venlafaxine.json").read_text())
    good = [json.dumps(e["resource"]) for e in bundle["entry"]]
    lines = good * 40  # about 200 KB: cut into many 8 KB chunks
    lines[150] = '{"resourceType": "Condition", "subject": '  # not JSON, deep inside the file
    lines[171] = json.dumps({**bundle["entry"][1]["resource"], "subject": 7})  # a subject of the wrong type
    condition = {**bundle["entry"][1]["resource"], "note": [{"text": "x"}]}
    lines[180] = json.dumps(condition)[:-8]  # its subject whole, its end cut: routed unparsed, then named
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "all.ndjson").write_text("\n".join(lines) + "\n")

    code, expected, _ = _classify([inputs])
    run_local([inputs], tmp_path / "out", Settings(as_of=AS_OF), workers=2, buckets=3, chunk_bytes=8 << 10)

    sources = {w["source"] for w in expected["warnings"]} | {w["source"] for r in expected["results"]
                                                            for w in r.get("warnings", ())}
    assert any(s.endswith("all.ndjson:151") for s in sources)  # line numbers are 1-based
    assert any(s.endswith("all.ndjson:181") and "not valid JSON" in w["message"] for w in expected["warnings"]
               for s in [w["source"]])
    got = [json.loads(line) for line in (tmp_path / "out" / "results.ndjson").read_text().splitlines()]
    assert got == expected["results"]
    assert _warnings(tmp_path / "out" / "warnings.ndjson") == sorted(
        orjson.dumps(w, option=orjson.OPT_SORT_KEYS).decode() for w in expected["warnings"])


def test_fhir_outputs_are_import_ready_ndjson_per_type_with_every_reference_inside(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["classify", str(SAMPLES), "--as-of", AS_OF.isoformat(), "--format", "fhir"], out, err) == 0
    bundles = [json.loads(line) for line in out.getvalue().splitlines()]
    assert main(["population", str(SAMPLES), "--out", str(tmp_path), "--as-of", AS_OF.isoformat(), "--fhir"],
                io.StringIO(), io.StringIO()) == 0

    written: dict[str, dict[str, Any]] = {}
    for path in sorted((tmp_path / "fhir").glob("*.ndjson")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            assert r["resourceType"] == path.stem and r["id"]
            written[f"{r['resourceType']}/{r['id']}"] = r
    assert len([k for k in written if k.startswith("Device/")]) == 1  # shared by every patient, once
    expected = {e["fullUrl"] for b in bundles for e in b.get("entry", ())}
    assert len(written) == len(expected)
    text = json.dumps(list(written.values()))
    assert "urn:uuid:" not in text  # every internal reference now names a resource in the output
    for ref in {r["reference"] for res in written.values() for r in _refs(res)}:
        if ref.split("/")[0] in {"Observation", "Flag", "RiskAssessment", "Device", "Provenance"} \
                and any(e for e in expected if e.endswith(ref.split("/")[-1])):
            assert ref in written


def _refs(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = [value] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []
