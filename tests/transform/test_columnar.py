"""The columnar path loads exactly what the row path loads, and leaves it everything else.

Each dataset is migrated twice into fresh databases of the same server, once with the
columnar path (the default) and once with ``--no-columnar``; every table, every quarantined
document (with its cause and its JSON), every unmapped field and every checkpoint must be
the same. The datasets: the generated CRM dump with edge cases and bad data, with and
without its ``ignore:`` lists (unmapped fields reported), and a dump of hand-made documents
that aim at each check of the path: wrong types, nulls, repeated keys, NUL bytes, invalid
UTF-8, values out of range, numeric strings, enum and length limits, and BSON whose length
prefixes lie.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import bson
import psycopg
import pytest
from bson import Decimal128, Int64, ObjectId
from typer.testing import CliRunner

from docshift.cli import app
from docshift.generate import generate_crm
from docshift.spec.load import load_mapping
from docshift.transform import columnar
from docshift.transform.convert import convert_options
from docshift.transform.rows import compile_streams

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "docshift" / "examples"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _strict(monkeypatch: pytest.MonkeyPatch) -> None:
    # a failure inside the columnar path fails the test instead of taking the row path
    monkeypatch.setattr(columnar, "STRICT", True)


def test_the_test_install_has_the_columnar_path() -> None:
    # the test extra installs it: every other test here would prove nothing without it
    assert columnar.available()


def snapshot(dsn: str) -> dict[str, Any]:
    """Every table of the target, and docshift's record of what was quarantined,
    unmapped and checkpointed; nothing that depends on time or on the run's number."""
    out: dict[str, Any] = {}
    with psycopg.connect(dsn) as c:
        tables = [r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        for t in tables:
            out[t] = c.execute(f'SELECT count(*), md5(coalesce(string_agg(x::text, E\'\\n\' '
                               f'ORDER BY x::text), \'\')) FROM public."{t}" x').fetchone()
        out["rejects"] = c.execute(
            "SELECT source, source_key, table_name, stage, field, error_class, message, "
            "document::text FROM docshift.rejects ORDER BY 1, 2, 3, 4, 5, 6, 7, 8").fetchall()
        out["unmapped"] = c.execute(
            "SELECT * FROM docshift.unmapped ORDER BY 1, 2, 3").fetchall()
        out["checkpoints"] = c.execute(
            "SELECT stream, position, docs_read, docs_rejected, rows_written::text, done "
            "FROM docshift.checkpoints ORDER BY 1").fetchall()
    return out


def migrate_both(mapping: Path, make_dsn: Any, *args: str) -> tuple[dict, dict, str]:
    """(columnar snapshot, row path snapshot, the columnar run's verbose output)."""
    snaps, logs = [], []
    for path in ("--columnar", "--no-columnar"):
        dsn = make_dsn()
        res = runner.invoke(app, ["run", "-c", str(mapping), "--dsn", dsn, "-v", path, *args])
        assert res.exit_code in (0, 3), res.output
        snaps.append(snapshot(dsn))
        logs.append(res.output)
    return snaps[0], snaps[1], logs[0]


def built_in_columns(out: str, stream: str) -> int:
    """How many documents of ``stream`` the run's --verbose output says it built in columns."""
    m = re.search(rf"{re.escape(stream)}: ([0-9,]+) of [0-9,]+ documents built in columns", out)
    assert m, out
    return int(m.group(1).replace(",", ""))


def assert_same(col: dict, row: dict) -> None:
    assert col.keys() == row.keys()
    for k in col:
        assert col[k] == row[k], k


def crm_mapping(tmp: Path, dump: Path, ignoring: bool) -> Path:
    text = (EXAMPLES / "crm" / "docshift.yaml").read_text()
    if not ignoring:
        text, n = re.subn(r"^ +ignore: \[[^\]]*\].*\n", "", text, flags=re.MULTILINE)
        assert n >= 2
    text = text.replace("${DOCSHIFT_SOURCE:-./out/crm}", f'"{dump}"')
    out = tmp / f"crm-{ignoring}.yaml"
    out.write_text(text)
    return out


SLOW = pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow


@pytest.mark.parametrize(("seed", "edge", "bad", "ignoring"), [
    (11, True, 0.2, True),
    pytest.param(11, True, 0.2, False, marks=SLOW),
    pytest.param(12, False, 0.0, True, marks=SLOW)])
def test_the_crm_dataset_loads_the_same_both_ways(tmp_path: Path, make_dsn: Any, seed: int,
                                                  edge: bool, bad: float,
                                                  ignoring: bool) -> None:
    dump = tmp_path / "crm"
    generate_crm(str(dump), scale=0.3, seed=seed, edge_cases=edge, bad_rate=bad)
    mapping = crm_mapping(tmp_path, dump, ignoring)
    col, row, out = migrate_both(mapping, make_dsn)
    assert_same(col, row)
    assert out.count("rows built in columns") >= 10, out
    built = sum(int(n.replace(",", "")) for n in re.findall(
        r"([0-9,]+) of [0-9,]+ documents built in columns", out))
    # without the ignore lists every document has an unmapped field to report, which
    # only the row path does
    assert built > 200 if ignoring else built == 0, out
    assert bool(col["rejects"]) is bool(bad)
    if not ignoring:
        assert col["unmapped"]


def test_most_clean_crm_documents_of_the_streams_it_reads_are_built_in_columns(
        tmp_path: Path) -> None:
    # the others hold dates as ISO text, or doubles for numeric columns: the row path's
    dump = tmp_path / "crm"
    generate_crm(str(dump), scale=0.3, seed=12)
    m = load_mapping(crm_mapping(tmp_path, dump, True))
    built = left = 0
    for name, plan in compile_streams(m).items():
        try:
            cp = columnar.compile_columnar(m, plan)
        except columnar.NotColumnar:
            continue
        data = (dump / "crm" / f"{name}.bson").read_bytes()
        ends, pos = [], 0
        while pos < len(data):
            pos += struct.unpack_from("<i", data, pos)[0]
            ends.append(pos)
        seg = columnar.ColumnarDecoder(cp, convert_options(m.options)).decode(
            data, 0, ends, list(range(len(ends))))
        left += len(seg.rest)
        built += len(ends) - len(seg.rest)
    assert built > 3 * left > 0, (built, left)


# --- hand-made documents ----------------------------------------------------------------

MAPPING = """
source: {kind: mongodump, path: "%(dump)s"}
options: {unmapped: report}
tables:
  users:
    from: users
    primary_key: id
    ignore: [__v]
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, nullable: false}
      name: text
      age: integer
      small: smallint
      big: bigint
      score: double precision
      active: boolean
      status: {type: text, enum: [active, inactive]}
      zip: varchar(5)
      nick: {type: text, max_length: 4}
      created_at: {type: timestamptz, from: createdAt}
      city: {type: text, from: profile.city}
      lat: {type: double precision, from: profile.geo.lat}
      revenue: {type: "numeric(8,2)"}
      count: {type: "numeric(4,0)"}
      manager_id: {type: uuid, from: manager}
  user_tags:
    from: users
    unnest: tags
    columns:
      user_id: {type: uuid, from: _id}
      position: {type: integer, from: $index}
      tag: {type: varchar(3), from: $item}
  user_addresses:
    from: users
    unnest: addresses
    primary_key: [user_id, position]
    columns:
      user_id: {type: uuid, from: _id}
      position: {type: smallint, from: $index}
      street: {type: text, nullable: false}
      zip: varchar(5)
      at: {type: timestamptz, from: $item.seen.at}
"""


def oid(i: int) -> ObjectId:
    return ObjectId(i.to_bytes(12, "big"))


def good(i: int) -> dict[str, Any]:
    return {"_id": oid(i), "email": f"u{i}@x.org", "name": f"User {i}", "age": i,
            "small": 3, "big": Int64(2**40 + i), "score": i / 3, "active": i % 2 == 0,
            "status": "active", "zip": "12345", "nick": "abcd",
            "createdAt": bson.datetime_ms.DatetimeMS(1_600_000_000_000 + i),
            "profile": {"city": "Brno", "geo": {"lat": 49.2}}, "revenue": "12.5",
            "count": "7", "manager": oid(0), "tags": ["a", "bb"],
            "addresses": [{"street": "Main", "zip": "602", "seen": {"at": None}}], "__v": 1}


CHANGES: list[dict[str, Any]] = [
    {"age": Int64(5)}, {"age": Int64(2**31)}, {"age": -(2**31)}, {"age": 1.0},
    {"age": True}, {"age": "5"}, {"age": None}, {"small": 2**15}, {"small": -(2**15)},
    {"big": 2**62}, {"big": Int64(-(2**63))}, {"score": float("nan")},
    {"score": float("-inf")}, {"score": -0.0}, {"score": 3}, {"active": 1},
    {"active": "true"}, {"email": None}, {"email": 7}, {"email": "a\x00b"},
    {"email": "é" * 40}, {"name": "\U0001f600 ok"}, {"status": "Active"}, {"status": None},
    {"status": "inactive"}, {"zip": "12345é"[:5]}, {"zip": "ééééé"}, {"zip": "éééééé"},
    {"zip": "123456"}, {"nick": "abcde"}, {"nick": "ab\u0301c"},
    {"createdAt": bson.datetime_ms.DatetimeMS(253_402_300_800_000)},
    {"createdAt": bson.datetime_ms.DatetimeMS(-62_135_596_800_001)},
    {"createdAt": bson.datetime_ms.DatetimeMS(-62_135_596_800_000)},
    {"createdAt": "2024-01-01T00:00:00Z"}, {"createdAt": None},
    {"profile": None}, {"profile": "Brno"}, {"profile": {"city": 5}},
    {"profile": {"city": "x", "zip": 1}}, {"profile": {}}, {"profile": {"geo": None}},
    {"profile": {"geo": {"lat": "1"}}}, {"profile": {"geo": {"lat": 1.5, "lon": 2.0}}},
    {"revenue": "-0.00"}, {"revenue": "0.005"}, {"revenue": "1e3"}, {"revenue": " 1"},
    {"revenue": "+1"}, {"revenue": "123456.78"}, {"revenue": "1234567.8"}, {"revenue": ""},
    {"revenue": "abc"}, {"revenue": ".5"}, {"revenue": "5."}, {"revenue": "007.10"},
    {"revenue": 12.5}, {"revenue": 12}, {"revenue": Decimal128("1.25")}, {"revenue": None},
    {"count": "9999"}, {"count": "10000"}, {"count": "-0"}, {"count": "0"}, {"count": "1.0"},
    {"manager": "000000000000000000000000"}, {"manager": None},
    {"tags": None}, {"tags": []}, {"tags": "a"}, {"tags": {"0": "a"}}, {"tags": [None]},
    {"tags": ["abcd"]}, {"tags": [1]}, {"tags": ["a\x00"]}, {"tags": ["é", "ééé", "éééé"]},
    {"addresses": None}, {"addresses": []}, {"addresses": [None]}, {"addresses": ["x"]},
    {"addresses": [{"street": None}]}, {"addresses": [{}]},
    {"addresses": [{"street": "s", "other": 1}]}, {"addresses": [{"street": "s", "zip": 5}]},
    {"addresses": [{"street": "s", "seen": {"at": bson.datetime_ms.DatetimeMS(0)}}]},
    {"addresses": [{"street": "s", "seen": "now"}]},
    {"addresses": [{"street": f"s{k}"} for k in range(40)]},
    {"__v": "x"}, {"__v": {"a": 1}}, {"__v": [1]}, {"__v": None}, {"unknown": 1},
    {"_id": "string-id"}, {"_id": 5}, {"_id": None},
]


def raw_element(kind: int, key: bytes, value: bytes) -> bytes:
    return bytes([kind]) + key + b"\x00" + value


def raw_doc(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def raw_string(s: bytes, length: int | None = None) -> bytes:
    return struct.pack("<i", len(s) + 1 if length is None else length) + s + b"\x00"


def damaged(i: int) -> list[bytes]:
    """Documents whose framing is sound but whose insides lie (or repeat keys)."""
    ident = raw_element(0x07, b"_id", oid(i).binary)
    email = raw_element(0x02, b"email", raw_string(b"d@x.org"))
    city = raw_element(0x02, b"city", raw_string(b"Brno"))
    return [
        raw_doc(ident, email, raw_element(0x02, b"name", raw_string(b"abc", 2))),
        raw_doc(ident, email, raw_element(0x02, b"name", raw_string(b"abc", 9))),
        raw_doc(ident, email, raw_element(0x02, b"name", raw_string(b"ab\x00cd"))),
        raw_doc(ident, email, raw_element(0x02, b"name", raw_string(b"\xff\xfe"))),
        raw_doc(ident, email, raw_element(0x02, b"name", raw_string(b"\xc3"))),
        raw_doc(ident, email, raw_element(0x08, b"active", b"\x02")),
        raw_doc(ident, email, raw_element(0x03, b"profile", raw_doc(city)[:-1] + b"\x00")),
        raw_doc(ident, email, raw_element(
            0x03, b"profile", struct.pack("<i", len(raw_doc(city)) - 2) + raw_doc(city)[4:])),
        raw_doc(ident, email, raw_element(
            0x03, b"profile", struct.pack("<i", len(raw_doc(city)) + 3) + raw_doc(city)[4:]),
            raw_element(0x0A, b"manager", b""), raw_element(0x0A, b"zip", b"")),
        raw_doc(ident, email, raw_element(0x04, b"tags", raw_doc(
            raw_element(0x02, b"0", raw_string(b"a", 7))))),
        raw_doc(ident, email, raw_element(0x04, b"tags", raw_doc(
            raw_element(0x02, b"7", raw_string(b"a")), raw_element(0x02, b"x", raw_string(b"b"))))),
        raw_doc(ident, email, email),
        raw_doc(ident, email, raw_element(0x02, b"name", raw_string(b"a")),
                raw_element(0x02, b"name", raw_string(b"b"))),
        raw_doc(ident, email, raw_element(0x03, b"profile", raw_doc(city)),
                raw_element(0x03, b"profile", raw_doc())),
        raw_doc(ident, email, raw_element(0x03, b"profile", raw_doc(city, city))),
        raw_doc(ident, ident, email),
        raw_doc(ident, email, raw_element(0x99, b"name", b"")),
        raw_doc(ident, email, raw_element(0x10, b"age", b"\x01\x00")),
        raw_doc(ident, email) [:-1] + b"\x00\x00",
        raw_doc(ident, email, b"\x00\x0a\x00"),
    ]


def write_users(dump: Path) -> int:
    docs = [good(i) for i in range(300)]
    for n, change in enumerate(CHANGES):
        d = good(1000 + n)
        d.update(change)
        if "_id" in change and change["_id"] is None:
            del d["_id"]
        docs.append(d)
    blob = b"".join(bson.encode(d) for d in docs)
    blob += b"".join(damaged(5000 + k)[k] for k in range(len(damaged(0))))
    blob += b"".join(bson.encode(good(i)) for i in range(300, 600))
    (dump / "db").mkdir(parents=True)
    (dump / "db" / "users.bson").write_bytes(blob)
    return len(docs) + len(damaged(0)) + 300


@pytest.mark.parametrize("batch", ["5000", pytest.param("7", marks=SLOW)])
def test_hand_made_documents_load_the_same_both_ways(tmp_path: Path, make_dsn: Any,
                                                     batch: str) -> None:
    n = write_users(tmp_path / "dump")
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(MAPPING % {"dump": tmp_path / "dump"})
    col, row, out = migrate_both(mapping, make_dsn, "--batch-size", batch)
    assert_same(col, row)
    assert built_in_columns(out, "users") >= 600  # the 600 clean documents at least
    read = sum(c[2] for c in col["checkpoints"])
    assert read == n
    assert len(col["rejects"]) > 30 and col["users"][0] > 600


EXISTING = """
source: {kind: mongodump, path: "%(dump)s"}
target: {mode: existing}
options: {unmapped: report}
tables:
  users:
    from: users
    primary_key: id
    ignore: [__v, small, big, score, active, zip, nick, createdAt, profile, revenue,
             count, manager, addresses]
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, nullable: false}
      name: text
      age: integer
      status: {type: text, enum: [active, inactive], max_length: 6}
  user_tags:
    from: users
    unnest: tags
    columns:
      user_id: {type: uuid, from: _id}
      tag: {type: text, from: $item}
"""

SCHEMA = """
CREATE TABLE users (id uuid PRIMARY KEY, email text NOT NULL, name text,
                    age integer CHECK (age <> 7), status text);
CREATE TABLE user_tags (user_id uuid REFERENCES users (id), tag text CHECK (tag <> 'zz'));
"""


def test_a_row_postgresql_refuses_sends_its_batch_to_the_row_path(tmp_path: Path,
                                                                  make_dsn: Any) -> None:
    # CHECKs of existing tables refuse two documents' rows: the columnar batch is built
    # again by the row path, which finds and quarantines just those documents; the
    # mapping's own enum and max_length (no CHECK here) reject two more, in their batch
    dump = tmp_path / "dump"
    kept = ("_id", "email", "name", "age", "status", "tags", "__v")
    docs = [{k: v for k, v in good(i).items() if k in kept} for i in range(50)]
    docs[20]["tags"] = ["a", "zz"]
    docs[40]["status"] = "bogus"
    docs[41]["status"] = "inactive"  # longer than max_length
    (dump / "db").mkdir(parents=True)
    (dump / "db" / "users.bson").write_bytes(b"".join(bson.encode(d) for d in docs))
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(EXISTING % {"dump": dump})
    snaps, outs = [], []
    for path in ("--columnar", "--no-columnar"):
        dsn = make_dsn()
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(SCHEMA)
        res = runner.invoke(app, ["run", "-c", str(mapping), "--dsn", dsn, "-v", path,
                                  "--batch-size", "30"])
        assert res.exit_code == 3, res.output
        snaps.append(snapshot(dsn))
        outs.append(res.output)
    assert_same(*snaps)
    # the first batch was refused and built again by the row path; of the second batch all
    # but the two the mapping rejects were built in columns
    assert built_in_columns(outs[0], "users") == 18
    assert sorted(r[1] for r in snaps[0]["rejects"]) == [
        oid(i).binary.hex() for i in (7, 20, 40, 41)]
    assert snaps[0]["users"][0] == 46


def test_by_default_a_small_unit_is_built_by_the_row_path(tmp_path: Path, make_dsn: Any,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    # the libraries cost more to import than a small unit wins back; --columnar forces them
    from docshift.run import worker

    monkeypatch.setattr(columnar, "_bsonscan", None)  # as in a process that has not used them
    dump = tmp_path / "dump" / "db"
    dump.mkdir(parents=True)
    (dump / "users.bson").write_bytes(b"".join(bson.encode(good(i)) for i in range(300)))
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(MAPPING % {"dump": tmp_path / "dump"})
    res = runner.invoke(app, ["run", "-c", str(mapping), "--dsn", make_dsn(), "-v"])
    assert res.exit_code == 0, res.output
    assert (f"users: rows built one document at a time (fewer than "
            f"{worker.COLUMNAR_MIN_DOCS:,} documents" in res.output), res.output
    assert "documents built in columns" not in res.output
