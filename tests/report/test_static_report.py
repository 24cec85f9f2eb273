"""`fhirtrd report`: the static pages of the bundled samples match their golden files; bad input is answered."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fhirtrd.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
# The command as README.md and docs/smart-app.md show it (run below exactly, in a folder with samples/).
COMMAND = "fhirtrd report samples/ --out report/ --as-of 2025-01-15"


def test_the_documented_command_is_the_one_tested() -> None:
    assert COMMAND in (ROOT / "docs" / "smart-app.md").read_text(encoding="utf-8")
    assert COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_documented_smart_configuration_is_accepted() -> None:
    import yaml

    from fhirtrd.api.config import load_settings
    from fhirtrd.smart.settings import smart_settings

    text = (ROOT / "docs" / "smart-app.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    settings = load_settings(yaml.safe_load(block))
    smart = smart_settings(settings.smart, settings.public_url)
    assert smart is not None and [i.scope_version for i in smart.issuers] == ["v2", "v1"]
    assert smart.redirect_uri == "https://fhirtrd.example.org/smart/callback"


def run_report(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main([*args[:1], *args[1:]], stdout=out, stderr=err)
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def test_static_report_of_the_samples_matches_the_golden_pages(tmp_path: Path) -> None:
    import io
    import shutil

    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(COMMAND.split()[1:], stdout=out, stderr=err)  # exactly the documented command
    finally:
        os.chdir(cwd)
    assert code == 0, err.getvalue()
    assert "8 patient page(s)" in out.getvalue()
    written = sorted(p.name for p in (tmp_path / "report").iterdir())
    assert "index.html" in written and "report.css" in written and "p-stage2.html" in written
    if os.environ.get("FHIRTRD_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for name in written:
            if name.endswith(".html"):
                (GOLDEN / name).write_text((tmp_path / "report" / name).read_text("utf-8"), "utf-8")
    golden = sorted(p.name for p in GOLDEN.glob("*.html"))
    assert golden == [n for n in written if n.endswith(".html")]
    for name in golden:
        assert (tmp_path / "report" / name).read_text("utf-8") == (GOLDEN / name).read_text("utf-8"), name


def test_stage_two_page_shows_stage_bars_thresholds_and_next_step(tmp_path: Path) -> None:
    argv = ["report", "samples/mdd-stage-ii-sertraline-then-venlafaxine.json", "--out", str(tmp_path),
            "--as-of", "2025-01-15"]
    assert run_report(tmp_path, *argv)[0] == 0
    html = (tmp_path / "p-stage2.html").read_text("utf-8")
    assert 'data-stage="II"' in html
    assert len(re.findall(r'<g class="trial [^"]*"', html)) == 2
    assert 'class="threshold remission"' in html and 'class="threshold response"' in html
    assert "Treatment-resistant depression" in html
    assert "<script" not in html  # works without JavaScript
    index = (tmp_path / "index.html").read_text("utf-8")
    assert 'href="p-stage2.html"' in index


def test_an_unreadable_input_is_named_and_the_other_patients_are_still_written(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    argv = ["report", str(bad), "samples/mdd-remission-on-sertraline.json", "--out", str(tmp_path / "out"),
            "--as-of", "2025-01-15"]
    code, out, err = run_report(tmp_path, *argv)
    assert code == 1
    assert "broken.json" in err
    assert (tmp_path / "out" / "p-remission.html").exists()
    assert not list((tmp_path / "out").glob("*.part"))


def test_report_needs_an_output_folder(tmp_path: Path) -> None:
    code, _, err = run_report(tmp_path, "report", "samples/")
    assert code == 2 and "--out" in err


def test_every_page_has_unique_element_ids_and_its_evidence_links_resolve() -> None:
    for page in GOLDEN.glob("*.html"):
        html = page.read_text("utf-8")
        ids = re.findall(r'\bid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), page.name
        for target in re.findall(r'href="#([^"]+)"', html):
            assert target in ids, f"{page.name}: link to #{target} goes nowhere"


def test_index_shows_the_published_definitions_as_a_heat_map(tmp_path: Path) -> None:
    """Issue 14: the static report shows `--format summary` as a heat map (kappa cells shaded by value)."""
    assert run_report(tmp_path, "report", str(ROOT / "samples"), "--out", str(tmp_path / "r"),
                      "--as-of", "2025-01-15")[0] == 0
    index = (tmp_path / "r" / "index.html").read_text("utf-8")
    assert "Published TRD definitions, side by side" in index
    assert "7 MDD assessment(s) of 8 patient(s)" in index
    # fhirtrd's label: 1 of 7 (p-stage2); against itself kappa 1.00 in the darkest cell
    assert '<tr><th scope="row">fhirtrd</th><td>1</td><td>14.3 %</td>' \
           '<td style="background:hsl(210,65%,40%);color:#ffffff">1.00</td>' in index
    assert index.count('<th scope="row">') >= 8 + 12  # the patients' lines, then fhirtrd and 11 definitions
