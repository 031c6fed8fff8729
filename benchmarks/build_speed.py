"""Row building alone: ``StreamPlan.build`` with its whole-document function, and row by row.

    python benchmarks/build_speed.py --docs 40000 --repeat 10

Writes the dump of ``throughput.py`` (half users, half accounts), decodes each collection
once, then builds every document both ways in one process, the two ways interleaved
(``--repeat`` rounds each, the order swapped every round), and prints microseconds per
document for each and their ratio. Before timing, it checks that both ways give the same
rows, rejections and unmapped fields for every document.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import MAPPING, write_dump  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=40_000)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()

    from docshift.sources.base import SourceDocument
    from docshift.spec import parse_mapping
    from docshift.transform.rows import compile_streams

    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as d:
        dump = Path(d) / "dump"
        write_dump(dump, args.docs)
        m = parse_mapping(MAPPING % {"path": dump, "dsn": "postgresql://unused"}, "bench.yaml")
        plans = compile_streams(m)
        for name, plan in plans.items():
            docs = [SourceDocument(str(x["_id"]), x, "")
                    for x in bson.decode_all((dump / "bench" / f"{name}.bson").read_bytes())]
            whole = plan.document
            if whole is None:
                print(f"{name}: no whole-document function (its feeds are out of its reach)")
                continue
            for i, s in enumerate(docs):
                a = plan.build(s, i)
                plan.document = None
                b = plan.build(s, i)
                plan.document = whole
                assert (a.rows, a.rejection, a.unmapped) == (b.rows, b.rejection, b.unmapped), s.key
            took = {"whole": 0.0, "row by row": 0.0}
            for r in range(args.repeat):
                for way in (("whole", "row by row") if r % 2 else ("row by row", "whole")):
                    plan.document = whole if way == "whole" else None
                    t = time.perf_counter()
                    for i, s in enumerate(docs):
                        plan.build(s, i)
                    took[way] += time.perf_counter() - t
            plan.document = whole
            per = {k: v / args.repeat / len(docs) * 1e6 for k, v in took.items()}
            print(f"{name}: {len(docs):,} documents, whole {per['whole']:.2f} µs/document, "
                  f"row by row {per['row by row']:.2f} µs/document, "
                  f"ratio {per['whole'] / per['row by row']:.2f}")


if __name__ == "__main__":
    main()
