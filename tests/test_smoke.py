def test_database_is_reachable_and_empty(conn):
    n = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    ).fetchone()[0]
    assert n == 0
