"""How fast the dataset generators write documents.

    python benchmarks/generate_speed.py --scale large
    python benchmarks/generate_speed.py --scale 5 --formats mongodump,mongoexport --kv-dsn DSN

Prints documents per second for the CRM dataset (each format asked for) and for the
key-value dataset (to a .jsonl file, and into PostgreSQL when --kv-dsn is given), then the
process's peak resident memory. Output goes to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from docshift.generate import LARGE_SCALE, Manifest, generate_crm, generate_kv


def timed(label: str, fn: Callable[[], Manifest]) -> None:
    start = time.perf_counter()
    manifest = fn()
    seconds = time.perf_counter() - start
    docs = manifest.total_documents
    print(f"{label:<28} {docs:>10,} docs {seconds:>8.2f} s {docs / seconds:>10,.0f} docs/s")


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
    args = parser.parse_args()
    scale = LARGE_SCALE if args.scale == "large" else float(args.scale)
    opts = {"scale": scale, "seed": args.seed, "edge_cases": args.edge_cases,
            "bad_rate": args.bad_rate}
    print(f"python {platform.python_version()} on {platform.machine()}, scale {scale:g}")
    with tempfile.TemporaryDirectory(prefix="docshift-gen-") as tmp:
        for fmt in args.formats.split(","):
            out = Path(tmp) / fmt
            timed(f"crm {fmt}", lambda fmt=fmt, out=out: generate_crm(
                str(out), fmt=fmt, **opts))  # type: ignore[arg-type]
        timed("kv jsonl", lambda: generate_kv(str(Path(tmp) / "kv" / "kv.jsonl"), **opts))
        if args.kv_dsn:
            timed("kv postgres (binary COPY)", lambda: generate_kv(
                args.kv_dsn, table="kv_store_bench", replace=True,
                manifest_path=str(Path(tmp) / "manifest-kv.json"), **opts))
    # ru_maxrss is in KiB on Linux: the peak over every generator above
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
