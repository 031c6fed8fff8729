"""`docshift infer` and `docshift init --from` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from docshift.cli import app
from docshift.spec import load_mapping

runner = CliRunner()


def export(folder: Path) -> Path:
    folder.mkdir()
    rows = [{"_id": {"$oid": f"65a0000000000000000000{i:02x}"}, "__v": 0, "fullName": f"U {i}",
             "email": f"u{i}@example.com", "tags": ["a", "b"][: i % 3],
             "createdAt": {"$date": "2024-01-02T03:04:05Z"}} for i in range(30)]
    (folder / "users.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_infer_writes_a_mapping_that_plans(tmp_path: Path) -> None:
    src = export(tmp_path / "export")
    out = tmp_path / "docshift.yaml"
    res = runner.invoke(app, ["infer", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    m = load_mapping(out)
    users = m.tables["users"]
    assert m.source.kind == "json"
    assert users.ignore == ["__v"]
    assert users.columns["id"].type == "uuid" and users.columns["id"].from_ == "_id"
    assert users.columns["email"].unique and users.columns["email"].nullable is False
    assert users.columns["created_at"].type == "timestamptz"
    assert m.options.naming == "camelCase"
    assert m.tables["user_tags"].feeds[0].unnest == "tags"
    assert runner.invoke(app, ["plan", "-c", str(out)]).exit_code == 0


def test_infer_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    src = export(tmp_path / "export")
    out = tmp_path / "docshift.yaml"
    out.write_text("mine")
    res = runner.invoke(app, ["infer", str(src), "-o", str(out)])
    assert res.exit_code == 2
    assert "use --force" in res.output
    assert out.read_text() == "mine"
    res = runner.invoke(app, ["infer", str(src), "-o", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert "users:" in out.read_text()


def test_inline_arrays(tmp_path: Path) -> None:
    src = export(tmp_path / "export")
    out = tmp_path / "docshift.yaml"
    res = runner.invoke(app, ["infer", str(src), "-o", str(out), "--arrays", "inline"])
    assert res.exit_code == 0, res.output
    m = load_mapping(out)
    assert m.tables["users"].columns["tags"].type == "text[]"
    assert "user_tags" not in m.tables


def test_init_from_a_source(tmp_path: Path) -> None:
    src = export(tmp_path / "export")
    out = tmp_path / "docshift.yaml"
    res = runner.invoke(app, ["init", "--from", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "users" in load_mapping(out).tables


def test_a_missing_source_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    res = runner.invoke(app, ["infer", str(tmp_path / "nowhere"), "-o",
                              str(tmp_path / "m.yaml")])
    assert res.exit_code == 1
    assert "no such file or folder" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "m.yaml").exists()


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["infer", str(tmp_path), "--kind", "excel"])
    assert res.exit_code == 2
    assert "mongodump, json, mongodb, postgres_kv" in res.output


def test_a_kv_dsn_password_is_never_written(dsn: str, conn, tmp_path: Path) -> None:
    from docshift.infer.detect import without_secret

    assert without_secret("postgresql://app:s3cret@db.example/app") == \
        "postgresql://app@db.example/app"
    assert "s3cret" not in without_secret("host=db user=app password=s3cret dbname=app")
    conn.execute("CREATE TABLE kv_store_x (key text PRIMARY KEY, value jsonb)")
    conn.execute("""INSERT INTO kv_store_x VALUES
        ('user:u-1', '{"name": "A"}'), ('user:u-2', '{"name": "B"}'),
        ('user:u-3', '{"name": "C"}'), ('session:abc', '{"u": 1}')""")
    out = tmp_path / "kv.yaml"
    res = runner.invoke(app, ["infer", dsn, "-o", str(out)])
    assert res.exit_code == 0, res.output
    m = load_mapping(out)
    assert m.source.table == "kv_store_x"
    assert m.tables["users"].feeds[0].keys == ["user:{id}"]
    assert "session:*" in m.ignore_keys


def test_a_live_mongodb_source(tmp_path: Path, monkeypatch) -> None:
    import mongomock
    from bson import ObjectId

    client = mongomock.MongoClient()
    users = [{"_id": ObjectId(f"{i + 1:024x}"), "name": f"u{i}"} for i in range(5)]
    client["crm"]["users"].insert_many(users)
    client["crm"]["tasks"].insert_many(
        [{"_id": ObjectId(f"{i + 100:024x}"), "owner": users[i % 5]["_id"]} for i in range(9)])
    monkeypatch.setattr("docshift.sources.mongodb.pymongo.MongoClient",
                        lambda *a, **k: client)
    out = tmp_path / "docshift.yaml"
    res = runner.invoke(app, ["infer", "mongodb://app:s3cret@localhost/crm", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "s3cret" not in text
    assert '"${MONGO_URI:-mongodb://app@localhost/crm}"' in text
    m = load_mapping(out)
    assert m.source.database == "crm"
    assert m.tables["tasks"].columns["owner_id"].references == "users"
