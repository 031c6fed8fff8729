"""The columnar path's parts, timed on the throughput benchmark's dump, next to bson.decode_all.

    python benchmarks/throughput.py --docs 100000 --prepare DIR
    python benchmarks/columnar_speed.py DIR/docshift.yaml --repeat 3

For each collection: CPU per document of decoding and converting 5,000 documents at a time
(``ColumnarDecoder.decode``: the C scanner, then numpy and pyarrow), of encoding their rows
for binary COPY (pgpq), and of ``bson.decode_all`` on the same bytes (the row path's first
step alone). Also how many documents the columnar path left to the row path (none, on this
clean dataset).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from pathlib import Path

import bson

from docshift.spec.load import load_mapping
from docshift.transform import columnar
from docshift.transform.convert import convert_options
from docshift.transform.rows import compile_streams

BATCH = 5000


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("mapping", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    m = load_mapping(args.mapping)
    if not columnar.available():
        raise SystemExit('the columnar path is not installed: pip install "docshift[fast]"')
    for name, plan in compile_streams(m).items():
        cp = columnar.compile_columnar(m, plan)
        dec = columnar.ColumnarDecoder(cp, convert_options(m.options))
        data = (Path(str(m.source.path)) / "bench" / f"{name}.bson").read_bytes()
        ends, pos = [], 0
        while pos < len(data):
            pos += struct.unpack_from("<i", data, pos)[0]
            ends.append(pos)
        n = len(ends)
        decode, encode, plain, rest = [], [], [], 0
        for _ in range(args.repeat):
            t = time.process_time()
            segs = [dec.decode(data, ends[i - 1] if i else 0, ends[i:i + BATCH],
                               list(range(i, min(n, i + BATCH)))) for i in range(0, n, BATCH)]
            decode.append(time.process_time() - t)
            t = time.process_time()
            for tp in cp.tables:
                columnar.encode_copy(tp, [s.tables[tp.table] for s in segs])
            encode.append(time.process_time() - t)
            rest = sum(len(s.rest) for s in segs)
            t = time.process_time()
            bson.decode_all(data)
            plain.append(time.process_time() - t)
        us = 1e6 / n
        print(f"{name}: {n:,} documents, {rest} left to the row path; per document, medians "
              f"of {args.repeat}: decode and convert "
              f"{statistics.median(decode) * us:.2f} µs, encode COPY "
              f"{statistics.median(encode) * us:.2f} µs; bson.decode_all "
              f"{statistics.median(plain) * us:.2f} µs")


if __name__ == "__main__":
    main()
