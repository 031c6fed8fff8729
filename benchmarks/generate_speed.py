"""How fast the dataset generators write documents.

    python benchmarks/generate_speed.py --scale large
    python benchmarks/generate_speed.py --scale large --formats mongodump,mongodump-gz,mongoexport \
        --kv-dsn "$DSN" --repeat 3

Measures the CRM dataset (each format asked for) and the key-value dataset (to a .jsonl file,
and into PostgreSQL when --kv-dsn is given). Every run is a fresh Python process, as a
``docshift generate`` command would be: its time covers the whole ``generate_*`` call,
Faker's import and the text pools included, but not the interpreter's start. Runs go round
robin over the cases, so that a busy moment of a shared machine does not hit one case only.
Prints, per case, documents per second (best and median run) and peak resident memory: of
the main process, and of the largest worker process. Output goes to a temporary folder that
is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_case(case: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate one dataset in this process; return its size, time and memory."""
    from docshift.generate import LARGE_SCALE, generate_crm, generate_kv

    scale = LARGE_SCALE if args.scale == "large" else float(args.scale)
    opts: dict[str, Any] = {"scale": scale, "seed": args.seed, "edge_cases": args.edge_cases,
                            "bad_rate": args.bad_rate}
    if args.workers is not None:
        opts["workers"] = args.workers
    start = time.perf_counter()
    if case.startswith("crm "):
        manifest = generate_crm(str(out), fmt=case[4:], **opts)  # type: ignore[arg-type]
    elif case == "kv jsonl":
        manifest = generate_kv(str(out / "kv.jsonl"), **opts)
    else:
        manifest = generate_kv(args.kv_dsn, table="kv_store_bench", replace=True,
                               manifest_path=str(out / "manifest-kv.json"), **opts)
    seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN: the largest worker process
    return {"docs": manifest.total_documents, "seconds": seconds,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="1", help="a number, or 'large'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default="mongodump",
                        help="comma-separated: mongodump, mongodump-gz, mongoexport")
    parser.add_argument("--edge-cases", action="store_true")
    parser.add_argument("--bad-rate", type=float, default=0.0)
    parser.add_argument("--kv-dsn", help="also load the key-value dataset into this database "
                        "(table kv_store_bench, replaced)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case")
    parser.add_argument("--workers", type=int, help="worker processes (default: automatic)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, Path(args.out), args)))
        return

    cases = [f"crm {fmt}" for fmt in args.formats.split(",")] + ["kv jsonl"]
    if args.kv_dsn:
        cases.append("kv postgres")
    passed = sys.argv[1:]
    results: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory(prefix="docshift-gen-") as tmp:
        for run in range(args.repeat):
            for case in cases:
                out = Path(tmp) / f"{case.replace(' ', '-')}-{run}"
                proc = subprocess.run(
                    [sys.executable, __file__, *passed, "--one", case, "--out", str(out)],
                    capture_output=True, text=True, check=True)
                results[case].append(json.loads(proc.stdout.splitlines()[-1]))

    scale = args.scale if args.scale != "large" else "large (50)"
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"scale {scale}, {args.repeat} run(s) per case, workers: "
          f"{args.workers or 'automatic'}")
    print(f"{'case':<16} {'documents':>10} {'best s':>7} {'docs/s best':>12} "
          f"{'docs/s median':>14} {'peak MiB main/worker':>21}")
    for case, runs in results.items():
        rates = [r["docs"] / r["seconds"] for r in runs]
        best = min(runs, key=lambda r: r["seconds"])
        memory = (f"{max(r['rss'] for r in runs):.0f} / "
                  f"{max(r['rss_workers'] for r in runs):.0f}")
        print(f"{case:<16} {best['docs']:>10,} {best['seconds']:>7.2f} {max(rates):>12,.0f} "
              f"{statistics.median(rates):>14,.0f} {memory:>21}")


if __name__ == "__main__":
    main()
