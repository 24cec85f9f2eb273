"""`fhirtrd classify … --format summary`: prevalence of each TRD definition and Cohen's kappa."""

from __future__ import annotations

import re
import shlex

import pytest

from fhirtrd.summary import Agreement, agreement

from .conftest import REAL, REPO_ROOT, run_cli

AMM = REAL / "ecqm-qicore-2024" / "AntidepressantMedicationManagementFHIR"
DEFINITIONS = ("fabbri-2sw", "coombes-sw1", "coombes-sw2", "coombes-num", "lo-ssri-switch", "claims-2adq3",
               "liu-2x4w", "dk-2shift-12m", "eu-pearl", "mgh-s", "esm")


def test_kappa_of_the_textbook_example() -> None:
    # 50 subjects: both yes 20, first only 5, second only 10, both no 15 → p_o 0.70, p_e 0.50, κ 0.40
    # (the worked example of the Wikipedia article "Cohen's kappa"; formula of Cohen 1960,
    # Educ Psychol Meas 20:37-46)
    g = Agreement(20, 5, 10, 15)
    assert g.kappa == pytest.approx(0.4)


def test_kappa_of_two_constant_raters_is_undefined() -> None:
    assert agreement([False] * 4, [False] * 4).kappa is None
    assert agreement([True, False], [False, True]).kappa == pytest.approx(-1.0)


def rows(out: str) -> dict[str, list[str]]:
    """The first table of the summary, by definition id."""
    table = out.split("\n\n")[1]
    return {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:]}


def test_the_readme_summary_command_prints_what_the_readme_shows() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n\$ (fhirtrd classify samples/ [^\n]*--format summary)\n(.*?)```", readme, re.S)
    assert block, "README has no summary example"
    argv = shlex.split(block.group(1))[1:]
    code, out, _ = run_cli(*argv)
    assert code == 0
    assert out == block.group(2)
    table = rows(out)
    assert table["fhirtrd"][:2] == ["1", "14.3%"]  # p-stage2: two failed SSRI/SNRI trials
    assert table["coombes-sw1"][:2] == ["2", "28.6%"]  # p-stage2 and p-bipolar switched after ≥ 30 days
    assert table["esm"][-1] == "1.00"  # the same patient as fhirtrd


@pytest.mark.skipif(not REAL.is_dir(), reason="real corpus not present")
def test_real_corpus_summary() -> None:
    code, out, _ = run_cli("classify", REAL, "--as-of", "2025-06-30", "--format", "summary", "--no-progress")
    assert code == 0
    assert out.startswith("304 patient(s), 101 MDD assessment(s)\n")
    table = rows(out)
    assert list(table) == ["fhirtrd", *DEFINITIONS]
    # no patient of the corpus took two different antidepressants: every definition is 0 of 101
    for key, cells in table.items():
        assert cells == ["0", "0.0%", "0", "0", "0", "101", "-"], key


@pytest.mark.skipif(not AMM.is_dir(), reason="CMS128 test patients not present")
def test_cms128_test_patients_summary() -> None:
    code, out, _ = run_cli("classify", AMM, "--as-of", "2025-06-30", "--format", "summary", "--no-progress")
    assert code == 0
    assert out.startswith("26 patient(s), 25 MDD assessment(s)\n")
    table = rows(out)
    # CMS128 tests one antidepressant episode each (IPSD, 84/180-day coverage): nobody switches
    assert {key: cells[0] for key, cells in table.items()} == {key: "0" for key in ("fhirtrd", *DEFINITIONS)}
