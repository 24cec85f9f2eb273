"""Population write-back benchmark: `fhirtrd population-sync` to a local sekmet-fhir, per patient vs batched.

For each population size, the sample patients' results (`fhirtrd population samples/`) are copied
under new patient ids up to N lines of results.ndjson; then, on a fresh sekmet server for each batch
size, a first run and a no-change re-run of `fhirtrd population-sync --batch-size B`. Measured per
run: wall time, HTTP requests (from the run's report), transactions, peak RSS and CPU of the
population-sync process (`ru_maxrss`, `ru_utime + ru_stime` from `os.wait4`; the wall time not spent
on its CPU is mostly the server's). `--batch-size 1` (one transaction per
patient) is the baseline; the ratios are against it, at the same N, in the same run. Peak RSS at the
smallest and largest N shows whether memory grows with the population.

Run: `python -m bench.population_sync --patients 500 2000 --batch-sizes 1 25 50` (needs
sekmet-fhir: $FHIRTRD_SEKMET or .venv-sekmet/bin/sekmet, see .ci/sekmet.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sync import start_server

REPO_ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2025-01-15"


@dataclass
class Run:
    patients: int
    batch_size: int
    kind: str  # first | re-run
    wall_s: float
    requests: int
    transactions: int
    peak_rss_mb: float
    cpu_s: float  # user + system CPU of the population-sync process: the rest of the wall time is the server
    written: int
    unchanged: int
    failed: int

    @property
    def patients_per_s(self) -> float:
        return self.patients / self.wall_s


def sample_results(work: Path) -> list[str]:
    out = work / "samples-out"
    subprocess.run([sys.executable, "-m", "fhirtrd", "population", str(REPO_ROOT / "samples"), "--out", str(out),
                    "--as-of", AS_OF, "--fhir"], check=True, capture_output=True)
    return (out / "results.ndjson").read_text().splitlines()


def population(lines: list[str], patients: int, directory: Path) -> Path:
    """results.ndjson of ``patients`` lines: the sample patients again and again under new ids."""
    directory.mkdir(parents=True)
    with (directory / "results.ndjson").open("w") as fh:
        for n in range(patients):
            line = lines[n % len(lines)]
            pid = json.loads(line)["patient"].removeprefix("Patient/")
            fh.write(re.sub(rf"\bPatient/{re.escape(pid)}\b", f"Patient/{pid}-{n // len(lines)}", line) + "\n")
    return directory


def run_once(base: str, results: Path, state: Path, batch_size: int, kind: str, patients: int) -> Run:
    report = state.with_suffix(".report.json")
    command = [sys.executable, "-m", "fhirtrd", "population-sync", "--server", base, "--results", str(results),
               "--state", str(state), "--rate", "0", "--batch-size", str(batch_size), "--report", str(report)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"population-sync failed (batch size {batch_size}):\n{stderr}")
    doc = json.loads(report.read_text())
    counts = doc["counts"]
    return Run(patients, batch_size, kind, wall, int(doc["requests"]["total"]),
               int(doc["requests"]["by_kind"].get("transaction", 0)), usage.ru_maxrss / 1024,
               usage.ru_utime + usage.ru_stime,
               counts["written"], counts["unchanged"] + counts["not_assessed"], counts["failed"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 25, 50])
    args = parser.parse_args(argv)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="fhirtrd-bench-popsync-") as tmp:
        work = Path(tmp)
        lines = sample_results(work)
        for patients in args.patients:
            results = population(lines, patients, work / f"pop-{patients}")
            for batch_size in args.batch_sizes:
                server_dir = work / f"sekmet-{patients}-{batch_size}"
                server_dir.mkdir()
                proc, base = start_server(server_dir)
                try:
                    state = work / f"state-{patients}-{batch_size}.json"
                    for kind in ("first", "re-run"):
                        run = run_once(base, results, state, batch_size, kind, patients)
                        runs.append(run)
                        print(f"N={patients:>6} batch={batch_size:>3} {kind:<7} {run.wall_s:7.1f} s "
                              f"{run.patients_per_s:7.1f} patients/s {run.requests:>6} requests "
                              f"({run.transactions} transactions) CPU {run.cpu_s:5.1f} s peak RSS {run.peak_rss_mb:6.1f} MB "
                              f"written {run.written} unchanged {run.unchanged} failed {run.failed}",
                              file=sys.stderr, flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    print(json.dumps(report(runs), indent=1))
    return 0


def report(runs: list[Run]) -> dict[str, Any]:
    """Every run, with ratios to the per-patient run (batch size 1) of the same N and kind."""
    out: list[dict[str, Any]] = []
    for run in runs:
        base = next((r for r in runs if r.patients == run.patients and r.kind == run.kind and r.batch_size == 1),
                    None)
        row: dict[str, Any] = {**run.__dict__, "wall_s": round(run.wall_s, 2),
                               "patients_per_s": round(run.patients_per_s, 1),
                               "peak_rss_mb": round(run.peak_rss_mb, 1), "cpu_s": round(run.cpu_s, 2)}
        if base is not None and run is not base:
            row["speed-up vs per-patient"] = round(base.wall_s / run.wall_s, 2)
            row["requests vs per-patient"] = round(run.requests / base.requests, 3)
            row["client CPU vs per-patient"] = round(run.cpu_s / base.cpu_s, 2)
        out.append(row)
    sizes = sorted({r.patients for r in runs})
    flat: dict[str, Any] = {}
    if len(sizes) > 1:
        for batch_size in sorted({r.batch_size for r in runs}):
            small = max(r.peak_rss_mb for r in runs if r.patients == sizes[0] and r.batch_size == batch_size)
            large = max(r.peak_rss_mb for r in runs if r.patients == sizes[-1] and r.batch_size == batch_size)
            flat[f"batch {batch_size}: peak RSS at N={sizes[-1]} / N={sizes[0]}"] = round(large / small, 2)
    return {"runs": out, "memory": flat}


if __name__ == "__main__":
    raise SystemExit(main())
