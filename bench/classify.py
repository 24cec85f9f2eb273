"""Benchmark: end-to-end `fhirtrd classify` throughput and peak memory against an orjson parse baseline.

Generates (or reuses) a synthetic Bulk Data NDJSON population (bench/population.py), then in the
same run measures:
- parse baseline: `orjson.loads` of every line of every file (time of the loads only, min of N);
- end-to-end classify: the real CLI `fhirtrd classify DIR --as-of D --format json` in a subprocess,
  wall time, CPU time and peak RSS (from `os.wait4`, i.e. that child only), patients/s and MB/s;
- memory growth: the same CLI on a smaller population (default 1,000; a prefix of the big one).
Prints a table and, last, one machine-readable JSON line. Exit 0 when the measurement ran (the
targets are reported, not enforced); 2 when the population or the CLI could not be run.

Run: `python -m bench.classify [--patients 10000] [--seed 7] [--keep] [--out DIR] [--profile 25]`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.population import DEFAULT_AS_OF, PopulationError, generate

MANIFEST = "population.manifest"  # not *.json: the CLI reads every .json under the directory
TARGET_RATIO = 5.0
TARGET_RSS_MB = 300.0


@dataclass(slots=True)
class ClassifyRun:
    """One end-to-end CLI run."""

    patients: int
    bytes: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    results: int
    returncode: int

    @property
    def patients_per_s(self) -> float:
        return self.patients / self.wall_s if self.wall_s else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.wall_s if self.wall_s else 0.0


def population(directory: Path, patients: int, seed: int, as_of: date) -> dict[str, Any]:
    """The population in `directory`: reused when its manifest matches, else generated there."""
    manifest = directory / MANIFEST
    if manifest.exists():
        found = orjson.loads(manifest.read_bytes())
        if (found.get("patients"), found.get("seed"), found.get("as_of")) == (patients, seed, as_of.isoformat()):
            found["reused"] = True
            return found
    if directory.exists():
        for old in directory.glob("*.ndjson"):
            old.unlink()
    stats = generate(directory, patients, seed, as_of)
    summary = {**stats.summary(), "seed": seed, "as_of": as_of.isoformat()}
    manifest.write_bytes(orjson.dumps(summary))
    summary["reused"] = False
    return summary


def ndjson_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.ndjson"))


def parse_baseline(directory: Path, repeats: int) -> tuple[float, float, int]:
    """Wall and CPU seconds orjson.loads takes over every line (min of `repeats`), bytes parsed.

    Lines are split outside the timed section, one file at a time, so only the parse is timed.
    """
    loads = orjson.loads
    best = best_cpu = float("inf")
    total_bytes = 0
    for _ in range(repeats):
        elapsed = cpu = 0.0
        total_bytes = 0
        for path in ndjson_files(directory):
            data = path.read_bytes()
            total_bytes += len(data)
            lines = data.splitlines()
            del data
            began, began_cpu = time.perf_counter(), time.process_time()
            for line in lines:
                loads(line)
            elapsed += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            del lines
        best, best_cpu = min(best, elapsed), min(best_cpu, cpu)
    return best, best_cpu, total_bytes


def cli_command() -> list[str]:
    """The installed console script beside this interpreter, else the CLI module."""
    script = Path(sys.executable).with_name("fhirtrd")
    if script.exists():
        return [str(script)]
    found = shutil.which("fhirtrd")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from fhirtrd.cli import main; sys.exit(main(sys.argv[1:]))"]


# A small launcher between this process and the CLI: Linux carries a parent's peak RSS into a
# forked child's ru_maxrss, so the benchmark (which holds gigabytes while it times the parse) must
# not fork the CLI itself. The launcher is ~10 MB, the bound on what its own fork adds.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{rc} {u.ru_maxrss} {u.ru_utime + u.ru_stime}')\n"
    "sys.exit(rc)\n"
)


def run_classify(directory: Path, patients: int, as_of: date, out: Path) -> ClassifyRun:
    """Run the CLI once: wall time, and the CLI's own peak RSS and CPU time (RUSAGE_CHILDREN)."""
    size = sum(p.stat().st_size for p in ndjson_files(directory))
    cmd = [*cli_command(), "classify", str(directory), "--as-of", as_of.isoformat(), "--format", "json",
           "--no-progress"]
    err_path = out.with_suffix(".stderr")
    usage_path = out.with_suffix(".rusage")
    with out.open("wb") as stdout, err_path.open("wb") as stderr:
        began = time.perf_counter()
        returncode = subprocess.call([sys.executable, "-c", _LAUNCHER, str(usage_path), *cmd],
                                     stdout=stdout, stderr=stderr)
        wall = time.perf_counter() - began
    rc_text, maxrss_kib, cpu = usage_path.read_text().split()
    results = -1
    if returncode == 0:
        try:
            results = len(orjson.loads(out.read_bytes()).get("results", []))
        except orjson.JSONDecodeError:
            results = -1
    else:
        tail = err_path.read_text(errors="replace")[-2000:]
        print(f"fhirtrd classify exited {rc_text}: {' '.join(cmd)}\n{tail}", file=sys.stderr)
    # ru_maxrss is in KiB on Linux.
    return ClassifyRun(patients, size, wall, float(cpu), int(maxrss_kib) / 1024, results, returncode)


def profile(directory: Path, as_of: date, top: int) -> list[dict[str, Any]]:
    """cProfile the service in-process on `directory`; the `top` functions by own time."""
    from fhirtrd.service import classify_paths
    from fhirtrd.terminology import load_terminology

    terminology = load_terminology()
    profiler = cProfile.Profile()
    profiler.enable()
    count = sum(1 for _ in classify_paths([directory], terminology, as_of))
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"where": f"{_short(filename)}:{line}", "function": name, "calls": calls,
                     "own_s": round(tottime, 3), "cum_s": round(cumtime, 3)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    print(f"\nprofile of classify_paths over {count} patients (top {top} by own time):")
    print(f"{'own s':>8} {'cum s':>8} {'calls':>10}  where")
    for r in rows[:top]:
        print(f"{r['own_s']:8.3f} {r['cum_s']:8.3f} {r['calls']:10d}  {r['where']} {r['function']}")
    return rows[:top]


def _short(filename: str) -> str:
    for marker in ("/fhirtrd/", "/site-packages/", "/lib/python"):
        if marker in filename:
            return filename[filename.index(marker) + 1:]
    return filename


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fhirtrd classify throughput and memory benchmark")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000,
                        help="second, smaller population for the memory-growth check (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=date.fromisoformat, default=DEFAULT_AS_OF)
    parser.add_argument("--repeats", type=int, default=3, help="parse baseline repeats (min is kept)")
    parser.add_argument("--out", type=Path, default=None,
                        help="work directory; populations there are reused (implies --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the generated populations")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile the service on the small population and print the top N")
    args = parser.parse_args(argv)

    work = args.out or Path(tempfile.mkdtemp(prefix="fhirtrd-bench-"))
    keep = args.keep or args.out is not None
    try:
        return _run(args, work)
    except PopulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"(populations kept in {work})", file=sys.stderr)


def _run(args: argparse.Namespace, work: Path) -> int:
    sizes = [args.patients] + ([args.small] if 0 < args.small < args.patients else [])
    pops: dict[int, dict[str, Any]] = {}
    for n in sizes:
        pops[n] = population(work / f"pop-{n}", n, args.seed, args.as_of)
        how = "reused" if pops[n]["reused"] else f"generated in {pops[n]['generate_s']} s"
        print(f"population {n}: {pops[n]['resources']} resources, {pops[n]['bytes'] / 1e6:.0f} MB, "
              f"{pops[n]['resources_per_patient']} resources and {pops[n]['kb_per_patient']} KB per "
              f"patient, {pops[n]['mh_share']:.0%} with depression/SAD history"
              f" ({how})",
              file=sys.stderr)

    runs: dict[int, ClassifyRun] = {}
    for n in sorted(sizes):
        runs[n] = run_classify(work / f"pop-{n}", n, args.as_of, work / f"classify-{n}.json")
        if runs[n].returncode != 0:
            return 2
    big = work / f"pop-{args.patients}"
    parse_s, parse_cpu_s, parse_bytes = parse_baseline(big, args.repeats)
    main_run = runs[args.patients]
    ratio = main_run.wall_s / parse_s
    ratio_cpu = main_run.cpu_s / parse_cpu_s

    print()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{date.today().isoformat()}")
    print(f"population: {args.patients} patients, seed {args.seed}, "
          f"{pops[args.patients]['resources']} resources, {parse_bytes / 1e6:.0f} MB NDJSON "
          f"({pops[args.patients]['resources_per_patient']} resources / "
          f"{pops[args.patients]['kb_per_patient']} KB per patient; "
          f"{pops[args.patients]['mh_share']:.0%} with depression/SAD history)")
    print(f"parse baseline (orjson.loads, min of {args.repeats}): {parse_s:.2f} s wall, "
          f"{parse_cpu_s:.2f} s CPU ({parse_bytes / 1e6 / parse_s:.0f} MB/s)")
    print(f"load average during the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"{'patients':>9} {'MB':>7} {'wall s':>8} {'cpu s':>8} {'pat/s':>8} {'MB/s':>7} "
          f"{'peak RSS MB':>12} {'results':>8}")
    for n in sorted(runs):
        r = runs[n]
        print(f"{n:9d} {r.bytes / 1e6:7.0f} {r.wall_s:8.2f} {r.cpu_s:8.2f} {r.patients_per_s:8.0f} "
              f"{r.mb_per_s:7.1f} {r.peak_rss_mb:12.0f} {r.results:8d}")
    print()
    verdict_ratio = "meets" if ratio <= TARGET_RATIO else "misses"
    verdict_rss = "meets" if main_run.peak_rss_mb <= TARGET_RSS_MB else "misses"
    print(f"classify / parse = {ratio:.1f}x wall ({verdict_ratio} the target <= {TARGET_RATIO:g}x), "
          f"{ratio_cpu:.1f}x CPU")
    print(f"peak RSS at {args.patients} patients = {main_run.peak_rss_mb:.0f} MB "
          f"({verdict_rss} the target <= {TARGET_RSS_MB:g} MB)")
    growth = None
    if len(runs) > 1:
        small = runs[min(runs)]
        growth = main_run.peak_rss_mb / small.peak_rss_mb
        print(f"peak RSS {small.patients} -> {main_run.patients} patients: "
              f"{small.peak_rss_mb:.0f} -> {main_run.peak_rss_mb:.0f} MB (x{growth:.2f})")
    hotspots = profile(work / f"pop-{min(sizes)}", args.as_of, args.profile) if args.profile else []
    print(orjson.dumps({
        "benchmark": "fhirtrd-classify", "date": date.today().isoformat(),
        "cores": os.cpu_count(), "python": platform.python_version(),
        "patients": args.patients, "seed": args.seed, "as_of": args.as_of.isoformat(),
        "population": {k: v for k, v in pops[args.patients].items() if k != "by_type"},
        "parse_s": round(parse_s, 3), "parse_cpu_s": round(parse_cpu_s, 3),
        "parse_bytes": parse_bytes, "loadavg": [round(x, 2) for x in os.getloadavg()],
        "classify": {str(n): {**asdict(r), "patients_per_s": round(r.patients_per_s, 1),
                              "mb_per_s": round(r.mb_per_s, 1)} for n, r in runs.items()},
        "ratio": round(ratio, 2), "ratio_cpu": round(ratio_cpu, 2), "target_ratio": TARGET_RATIO,
        "peak_rss_mb": round(main_run.peak_rss_mb, 1), "target_rss_mb": TARGET_RSS_MB,
        "rss_growth": round(growth, 2) if growth else None,
        "hotspots": hotspots[:10],
    }).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
