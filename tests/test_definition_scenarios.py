"""Golden patients of the published TRD definitions: tests/definitions/<name>/ through `fhirtrd classify`.

Each folder has `input.json`, `README.md` and `expected.json` of the shape
`{"as_of", "patient", "disorder", "definitions": {"<id>": {"met", "date_met", "value"?}}}`, written
from the published rule by an author who had not seen the program's output; only the listed ids and
keys are compared. Where the author's reading and the program differ on a rule the publication
leaves open, tests/definitions/DISAGREEMENTS.md records which reading the program follows and why.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from fhirtrd import cli

DEFINITIONS = Path(__file__).resolve().parent / "definitions"
NAMES = sorted(p.name for p in DEFINITIONS.iterdir() if (p / "input.json").is_file()) if DEFINITIONS.is_dir() else []


def _classify(input_path: Path, as_of: str) -> list[dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["classify", str(input_path), "--as-of", as_of, "--format", "json"], stdout=out, stderr=err)
    assert code == 0, f"`fhirtrd classify {input_path.name} --as-of {as_of}` exited with {code}: {err.getvalue()}"
    results: list[dict[str, Any]] = json.loads(out.getvalue())["results"]
    return results


def test_every_definition_has_a_patient_that_meets_it_and_one_that_misses_it() -> None:
    from fhirtrd.terminology import load_terminology

    ids = [d.id for d in load_terminology().rules.definitions]
    if not NAMES:
        pytest.skip("no golden definition patients in tests/definitions")
    for i in ids:
        assert any(n.startswith(f"{i}-met-") for n in NAMES), f"no patient meets {i}"
        assert any(n.startswith(f"{i}-missed-") for n in NAMES), f"no patient just misses {i}"


@pytest.mark.parametrize("name", NAMES)
def test_definition_scenario(name: str) -> None:
    folder = DEFINITIONS / name
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    results = _classify(folder / "input.json", expected["as_of"])
    result = next((r for r in results if r["patient"] == expected["patient"]), None)
    assert result is not None, f"{expected['patient']} not in the output"
    assessment = next((a for a in result["assessments"] if a["disorder"] == expected["disorder"]), None)
    assert assessment is not None, f"no {expected['disorder']} assessment for {expected['patient']}"
    got = {d["id"]: d for d in assessment["definitions"]}
    problems = []
    for key, want in expected["definitions"].items():
        have = got.get(key)
        if have is None:
            problems.append(f"{key}: not computed")
            continue
        for field, value in want.items():
            actual = have.get(field)
            same = (actual == pytest.approx(value)) if isinstance(value, float | int) and not isinstance(
                value, bool) and actual is not None else actual == value
            if not same:
                problems.append(f"{key}.{field}: expected {value!r}, got {actual!r}")
        if have["met"]:
            assert have["evidence"], f"{key} is met without evidence"
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
