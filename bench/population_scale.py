"""Benchmark: `fhirtrd population` (buckets on disk, a process pool) against `fhirtrd classify`.

In one run, on populations made by bench/population.py (the bench mix: 25 % with a depression/SAD
history; and a registry where every patient has one), it measures in subprocesses:
- the baseline, `fhirtrd classify DIR --format json` (one process): wall, CPU, peak RSS;
- `fhirtrd population DIR --workers 1` and `--workers 2`: wall, CPU (the process and its workers,
  from `os.wait4`), peak RSS of the whole process tree (sampled from /proc every 0.1 s), and that
  the results have the same digest as the baseline's;
- the same on the export a server returns for `_type` + `_typeFilter` (only the lines the classifier
  reads), and a projection for 1M patients on one 2-core machine from the measured CPU per patient.
Beside them, in the same run: the parse floor of each input (read every line, parse the lines the
classifier reads, nothing else — what any design that parses what it reads must spend), and the
machine's own 2-process scaling on independent CPU-bound work (the ceiling of a 2-worker speedup).
Prints a table, the ratios and, last, one machine-readable JSON line. The machine's load average is
printed beside the figures: wall-clock ratios mean little when other jobs share the cores.

With `--spark N`, the Spark engine (local[2]) against the local engine (2 workers) on N patients.

Run: `python -m bench.population_scale [--patients 2000 10000] [--registry 1000] [--spark 500] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from bench.population import DEFAULT_AS_OF, generate, load_vocabulary, patient_resources

MILLION = 1_000_000
TARGETS = {"peak_mb": 500, "per_core_mix": 600, "per_core_registry": 2500, "speedup_2w": 1.8, "projection_min": 15}


@dataclass
class Measured:
    """One subprocess run."""

    label: str
    patients: int
    wall_s: float
    cpu_s: float
    peak_tree_mb: float
    returncode: int
    digest: str = ""
    load: float = 0.0

    @property
    def per_cpu_s(self) -> float:
        return self.patients / self.cpu_s if self.cpu_s else 0.0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(label: str, patients: int, command: list[str], stdout: Path) -> Measured:
    """Run `command`, sampling the RSS of its process tree; CPU from wait4 (the child + its workers)."""
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with stdout.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, sum(_rss_kib(p) for p in _tree(proc.pid)))
            time.sleep(0.1)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(label, patients, round(wall, 2), round(usage.ru_utime + usage.ru_stime, 2),
                    round(max(peak, usage.ru_maxrss) / 1024, 1), proc.returncode, load=round(load, 1))


def apart(fn: Any, *args: Any) -> None:
    """Run `fn(*args)` in a fresh process: a population generated in this one would stay in its
    memory, and every child started from it would count it (a child's peak RSS includes what its
    parent held when it was forked)."""
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(target=fn, args=args)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{getattr(fn, '__name__', fn)} failed with exit code {proc.exitcode}")


def fhirtrd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fhirtrd", *args]


def registry(out: Path, patients: int, seed: int) -> None:
    """A psychiatric registry: every patient has a depression and/or SAD history."""
    vocab = load_vocabulary()
    out.mkdir(parents=True, exist_ok=True)
    handles: dict[str, BinaryIO] = {}
    try:
        for index in range(patients):
            resources, _ = patient_resources(seed, index, vocab, DEFAULT_AS_OF, mh_share=1.0)
            for res in resources:
                fh = handles.get(res["resourceType"])
                if fh is None:
                    fh = handles[res["resourceType"]] = (out / f"{res['resourceType']}.ndjson").open("wb")
                fh.write(orjson.dumps(res) + b"\n")
    finally:
        for fh in handles.values():
            fh.close()


def reduced(src: Path, out: Path) -> int:
    """What `_type` + `_typeFilter` would return: only the lines the classifier reads."""
    from fhirtrd.population.buckets import Splitter
    from fhirtrd.terminology import load_terminology

    splitter = Splitter(out / ".unused", 1, load_terminology())
    out.mkdir(parents=True, exist_ok=True)
    size = 0
    for path in sorted(src.glob("*.ndjson")):
        with path.open("rb") as fh, (out / path.name).open("wb") as dst:
            for line in fh:
                if splitter.relevant(line):
                    dst.write(line)
                    size += len(line)
    shutil.rmtree(out / ".unused", ignore_errors=True)
    return size


def _spin(_: int = 0) -> float:
    began = time.perf_counter()
    x = 0
    for i in range(6_000_000):
        x += i * i % 7
    return time.perf_counter() - began


def machine_scaling() -> float:
    """What 2 processes of independent CPU-bound work get from this machine against 1 (wall time,
    best of 3): the ceiling of any 2-worker speedup here, measured beside it."""
    import multiprocessing

    best = 0.0
    for _ in range(3):
        one = _spin()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            began = time.perf_counter()
            pool.map(_spin, [0, 1])
            two = time.perf_counter() - began
        best = max(best, 2 * one / two)
    return round(best, 2)


def parse_floor(label: str, src: Path, patients: int) -> dict[str, Any]:
    """What any design that parses what it reads must spend: read every line, keep the lines the
    classifier reads (the split's look at raw bytes), parse those with orjson — nothing else."""
    from fhirtrd.population.buckets import Splitter
    from fhirtrd.terminology import load_terminology

    splitter = Splitter(src / ".floor", 1, load_terminology())
    began = time.process_time()
    parsed = 0
    for path in sorted(src.glob("*.ndjson")):
        with path.open("rb", buffering=1 << 20) as fh:
            for line in fh:
                if splitter.relevant(line):
                    orjson.loads(line)
                    parsed += len(line)
    cpu = time.process_time() - began
    shutil.rmtree(src / ".floor", ignore_errors=True)
    return {"label": label, "cpu_s": round(cpu, 2), "parsed_mb": round(parsed / 1e6),
            "patients_per_cpu_s": round(patients / cpu)}


def _digest_of_baseline(path: Path) -> str:
    results = orjson.loads(path.read_bytes())["results"]
    return hashlib.sha256(b"".join(orjson.dumps(r) + b"\n" for r in results)).hexdigest()


def digest_of_baseline(path: Path) -> str:
    """The digest of `classify --format json`'s results as NDJSON lines, computed in a fresh process
    (parsing a big baseline here would be counted in every later child's peak memory)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_digest_of_baseline, path).result()


def digest_of_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def population_runs(name: str, directory: Path, patients: int, work: Path, workers: tuple[int, ...],
                    as_of: str, baseline: bool) -> list[Measured]:
    runs = []
    if baseline:
        b = measure(f"{name} classify (1 process)", patients,
                    fhirtrd("classify", str(directory), "--as-of", as_of, "--format", "json", "--no-progress"),
                    work / f"{name}.classify.json")
        b.digest = digest_of_baseline(work / f"{name}.classify.json")
        runs.append(b)
    for w in workers:
        out = work / f"{name}.w{w}"
        m = measure(f"{name} population --workers {w}", patients,
                    fhirtrd("population", str(directory), "--out", str(out), "--as-of", as_of, "--workers", str(w)),
                    work / f"{name}.w{w}.summary")
        m.digest = digest_of_file(out / "results.ndjson")
        runs.append(m)
        shutil.rmtree(out, ignore_errors=True)
    return runs


def spark_runs(work: Path, patients: int, seed: int, as_of: str) -> list[Measured]:
    """The local engine (2 workers) and the Spark engine (local[2]) on the same input."""
    d = work / f"spark{patients}"
    if not (d / "Patient.ndjson").exists():
        apart(generate, d, patients, seed, date.fromisoformat(as_of))
    runs = []
    for label, extra in (("local --workers 2", ["--workers", "2"]), ("spark local[2]", ["--engine", "spark"])):
        out = work / f"spark{patients}.{extra[-1]}"
        m = measure(f"spark{patients} population {label}", patients,
                    fhirtrd("population", str(d), "--out", str(out), "--as-of", as_of, "--buckets", "8", *extra),
                    work / f"spark{patients}.{extra[-1]}.summary")
        m.digest = digest_of_file(out / "results.ndjson")
        runs.append(m)
        shutil.rmtree(out, ignore_errors=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--patients", type=int, nargs="+", default=[2000])
    p.add_argument("--registry", type=int, default=1000, help="patients of the every-patient-relevant registry")
    p.add_argument("--baseline-max", type=int, default=10_000, help="run the 1-process baseline up to this size")
    p.add_argument("--spark", type=int, default=0, metavar="N",
                   help="also compare --engine spark (local[2]) with the local engine on N patients (needs "
                        "fhirtrd[spark] and Java; 0 = skip)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir, removed)")
    args = p.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="fhirtrd-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    as_of = DEFAULT_AS_OF.isoformat()
    random.seed(args.seed)
    runs: list[Measured] = []
    inputs: dict[str, Any] = {"floors": [], "machine_2_process_scaling": machine_scaling()}
    try:
        for n in args.patients:
            d = work / f"mix{n}"
            if not (d / "Patient.ndjson").exists():
                apart(generate, d, n, args.seed, date.fromisoformat(as_of))
            inputs[f"mix{n}_bytes"] = sum(f.stat().st_size for f in d.glob("*.ndjson"))
            runs += population_runs(f"mix{n}", d, n, work, (1, 2), as_of, n <= args.baseline_max)
            if n == args.patients[0]:
                inputs["floors"].append(parse_floor(f"mix{n}", d, n))
        small = args.patients[0]
        red = work / f"reduced{small}"
        inputs[f"reduced{small}_bytes"] = reduced(work / f"mix{small}", red)
        runs += population_runs(f"reduced{small}", red, small, work, (1,), as_of, False)
        reg = work / f"registry{args.registry}"
        if not (reg / "Patient.ndjson").exists():
            apart(registry, reg, args.registry, args.seed)
        inputs[f"registry{args.registry}_bytes"] = sum(f.stat().st_size for f in reg.glob("*.ndjson"))
        runs += population_runs(f"registry{args.registry}", reg, args.registry, work, (1,), as_of, True)
        inputs["floors"].append(parse_floor(f"registry{args.registry}", reg, args.registry))
        if args.spark:
            runs += spark_runs(work, args.spark, args.seed, as_of)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return report(runs, inputs, args)


def report(runs: list[Measured], inputs: dict[str, Any], args: argparse.Namespace) -> int:
    print(f"{'run':42} {'patients':>8} {'wall s':>8} {'cpu s':>8} {'pat/cpu-s':>9} {'peak MB':>8} "
          f"{'load':>5}  digest")
    for r in runs:
        print(f"{r.label:42} {r.patients:>8} {r.wall_s:>8} {r.cpu_s:>8} {r.per_cpu_s:>9.0f} {r.peak_tree_mb:>8} "
              f"{r.load:>5}  {r.digest[:12]}")
    by = {r.label: r for r in runs}
    ratios: dict[str, Any] = {}
    for n in args.patients:
        w1, w2 = by[f"mix{n} population --workers 1"], by[f"mix{n} population --workers 2"]
        base = by.get(f"mix{n} classify (1 process)")
        ratios[f"mix{n}"] = {
            "speedup_2w_wall": round(w1.wall_s / w2.wall_s, 2),
            "speedup_2w_vs_machine_ceiling": round(w1.wall_s / w2.wall_s / inputs["machine_2_process_scaling"], 2),
            "per_core_patients_per_cpu_s": round(w1.per_cpu_s),
            "peak_tree_mb_2w": w2.peak_tree_mb,
            "identical_to_classify": None if base is None else base.digest == w1.digest == w2.digest,
            "cpu_vs_classify": None if base is None else round(w1.cpu_s / base.cpu_s, 2),
            "peak_vs_classify": None if base is None else round(w2.peak_tree_mb / base.peak_tree_mb, 2),
        }
    small = args.patients[0]
    mix, red = by[f"mix{small} population --workers 1"], by[f"reduced{small} population --workers 1"]
    reg = by[f"registry{args.registry} population --workers 1"]
    reg_base = by[f"registry{args.registry} classify (1 process)"]
    ratios["registry"] = {"per_core_patients_per_cpu_s": round(reg.per_cpu_s),
                          "identical_to_classify": reg.digest == reg_base.digest,
                          "cpu_vs_classify": round(reg.cpu_s / reg_base.cpu_s, 2)}
    if args.spark:
        local = by[f"spark{args.spark} population local --workers 2"]
        spark = by[f"spark{args.spark} population spark local[2]"]
        ratios["spark"] = {"wall_vs_local": round(spark.wall_s / local.wall_s, 2),
                           "extra_wall_s": round(spark.wall_s - local.wall_s, 1),
                           "identical_to_local": spark.digest == local.digest}
    projection = {}
    for name, r in (("bench_mix", mix), ("reduced_export", red)):
        cpu_per_patient = r.cpu_s / r.patients
        projection[name] = {"cpu_ms_per_patient": round(cpu_per_patient * 1000, 2),
                            "minutes_1M_on_2_cores": round(cpu_per_patient * MILLION / 2 / 60, 1)}
    biggest = max(args.patients)
    w2 = by[f"mix{biggest} population --workers 2"]
    projection["bench_mix_from_2_worker_wall"] = {"patients": biggest,
                                                  "minutes_1M": round(w2.wall_s / biggest * MILLION / 60, 1)}
    for floor in inputs["floors"]:
        floor["vs_target"] = round(floor["patients_per_cpu_s"] / TARGETS[
            "per_core_registry" if floor["label"].startswith("registry") else "per_core_mix"], 2)
    print(f"\nmachine: 2 independent CPU-bound processes run {inputs['machine_2_process_scaling']}× one "
          "(the ceiling of a 2-worker speedup here)")
    print("parse floor (read every line, parse the lines the classifier reads, nothing else):",
          orjson.dumps(inputs["floors"]).decode())
    print("\nratios:", orjson.dumps(ratios, option=orjson.OPT_INDENT_2).decode())
    print("1M-patient projection (CPU per patient measured above / 2 cores, perfect scaling assumed):",
          orjson.dumps(projection).decode())
    print("targets:", orjson.dumps(TARGETS).decode())
    print(orjson.dumps({"runs": [asdict(r) for r in runs], "inputs": inputs, "ratios": ratios,
                        "projection": projection, "targets": TARGETS}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
