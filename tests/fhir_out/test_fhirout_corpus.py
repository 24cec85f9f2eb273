"""The write-back of every patient in samples/ and in the real public corpus is valid R4, and
feeding the outputs back in with the original data changes no assessment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fhirout_checks import check_bundle

from fhirtrd.fhir.outbound import build_transaction, write_bundles
from fhirtrd.schemas import dump_result
from fhirtrd.service import classify_paths
from fhirtrd.terminology import Terminology, load_terminology

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"
REAL = REPO_ROOT.parent / "shared" / "data" / "real-fhir"
AS_OF = date(2024, 6, 1)
ISSUED = datetime(2024, 6, 1, 12, tzinfo=UTC)
CORPORA = {"samples": SAMPLES, "real-fhir": REAL}


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return load_terminology()


def results(path: Path, terminology: Terminology) -> Iterator[dict[str, Any]]:
    if not path.is_dir():
        pytest.skip(f"{path} is not present")
    return (dump_result(r) for r in classify_paths([path], terminology, AS_OF))


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_every_patient_write_back_validates(corpus: str, terminology: Terminology) -> None:
    assessed = 0
    for result in results(CORPORA[corpus], terminology):
        bundle = build_transaction(result, issued=ISSUED)
        resources = check_bundle(bundle)
        assessed += bool(result["assessments"])
        assert len(resources) >= (3 if result["assessments"] else 0)
    assert assessed > 0, f"no patient of {corpus} was assessed: the test proves nothing"


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_outputs_read_back_with_the_inputs_change_nothing(
    corpus: str, terminology: Terminology, tmp_path: Path
) -> None:
    before = list(results(CORPORA[corpus], terminology))
    written = write_bundles(before, tmp_path, None, issued=ISSUED)
    assert len(written) == len(before)
    after = [dump_result(r) for r in classify_paths([CORPORA[corpus], tmp_path], terminology, AS_OF)]
    assert after == before
