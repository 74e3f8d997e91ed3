"""``gangline bench store``: transitions measured on SQLite and on a real PostgreSQL, as a person runs it."""

from __future__ import annotations

import json

from kits.helpers import gangline, ok
from kits.postgres import Cluster


def test_bench_store_measures_both_databases_and_leaves_the_item_where_it_was(postgres: Cluster) -> None:
    url = postgres.database()
    figures = json.loads(ok(gangline("bench", "store", "--database-url", url, "--transitions", "31")))
    assert [f["database"] for f in figures] == ["sqlite", "postgresql"]
    for figure in figures:
        assert figure["transitions"] == 31 and 0 < figure["p50_ms"] <= figure["p99_ms"]
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        kinds = conn.execute("SELECT trigger, count(*) FROM events WHERE kind = 'transition' GROUP BY trigger")
        assert dict(kinds.fetchall()) == {"block": 16, "unblock": 16}  # 31 timed, and the last block undone


def test_bench_store_refuses_a_database_it_cannot_open() -> None:
    out = gangline("bench", "store", "--database-url", "mysql://db/x", "--transitions", "10")
    assert out.returncode == 2 and "database_url: expected sqlite:///<path> or postgresql+psycopg://" in out.stderr
    assert "Traceback" not in out.stderr
