"""The store on real SQLite: compare-and-set transitions with their events, runs, the ledger, migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, text

from gangline.core.errors import ConfigError, NotFoundError, ServerLockedError, StateConflict
from gangline.core.events import RunOutcome, Usage
from gangline.core.items import Criterion, ItemDraft, ItemPatch
from gangline.core.profiles import Role
from gangline.core.records import NewRun, RunEnd
from gangline.core.stages import Facts, Hold, IllegalTransition, ItemState, Stage, Trigger
from gangline.store import Store, open_sqlite, open_store
from gangline.store.migrations import HEAD_REVISION
from gangline.store.schema import metadata
from kits.clock import Clock
from kits.postgres import Cluster


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with closing(open_store(database_url, Clock(1_700_000_000.0))) as store:
        yield store


def draft(title: str = "Add login", **fields: object) -> ItemDraft:
    return ItemDraft.model_validate({"title": title, **fields})


def test_a_new_item_is_in_backlog_with_its_criteria_and_a_created_event(store: Store) -> None:
    item = store.create_item(draft(criteria=[{"text": "a"}, {"text": "b", "checked": True}]), "ann")
    assert item.stage is Stage.BACKLOG and item.slug == "add-login"
    assert item.criteria == (Criterion(text="a"), Criterion(text="b", checked=True))
    [event] = store.events_after(0)
    assert (event.kind, event.actor, event.item_id, event.to_stage) == ("created", "ann", item.id, "backlog")


def test_a_transition_is_compare_and_set_and_logged_in_the_same_transaction(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    moved = store.transition(item.id, Trigger.START, "gangline", expected=item.state, facts=Facts(reason="slot free"))
    assert moved.stage is Stage.CODING
    with pytest.raises(StateConflict, match="is coding, not backlog"):
        store.transition(item.id, Trigger.START, "gangline", expected=item.state)
    event = store.events_after(0)[-1]
    assert (event.trigger, event.from_stage, event.to_stage, event.reason) == (
        "start",
        "backlog",
        "coding",
        "slot free",
    )
    assert len(store.events_after(0)) == 2  # the refused one left no row


def test_an_illegal_transition_names_the_current_stage_and_the_event(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    with pytest.raises(IllegalTransition, match=r"item 1: cannot merged while backlog") as err:
        store.transition(item.id, Trigger.MERGED, "gangline", facts=Facts(files_changed=3))
    assert err.value.state.stage is Stage.BACKLOG and err.value.trigger is Trigger.MERGED
    assert store.get_item(item.id).stage is Stage.BACKLOG


def test_holds_keep_their_reason(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    held = store.transition(item.id, Trigger.BLOCK, "ann", facts=Facts(reason="waiting for the API key"))
    assert held.state == ItemState(Stage.BACKLOG, Hold.BLOCKED, "waiting for the API key")


def test_edits_change_text_but_never_the_stage(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    edited = store.edit_item(item.id, ItemPatch(title="Add login page", criteria=(Criterion(text="x"),)), "ann")
    assert edited.title == "Add login page" and edited.slug == "add-login"  # the branch name stays stable
    assert edited.criteria == (Criterion(text="x"),) and edited.stage is Stage.BACKLOG


def test_dependencies_must_exist_and_never_form_a_cycle(store: Store) -> None:
    a = store.create_item(draft("a"), "ann")
    b = store.create_item(draft("b", depends_on=[a.id]), "ann")
    with pytest.raises(ConfigError, match="item 99 does not exist"):
        store.create_item(draft("c", depends_on=[99]), "ann")
    with pytest.raises(ConfigError, match="depend on itself through"):
        store.edit_item(a.id, ItemPatch(depends_on=(b.id,)), "ann")


def test_a_deleted_item_is_gone_for_good_and_its_id_is_never_reused(store: Store) -> None:
    a = store.create_item(draft("a"), "ann")
    store.delete_item(a.id, "ann")
    with pytest.raises(NotFoundError):
        store.get_item(a.id)
    assert store.create_item(draft("b"), "ann").id == a.id + 1
    assert [e.kind for e in store.events_after(0) if e.item_id == a.id] == ["created", "deleted"]


def test_an_item_that_others_need_cannot_be_deleted(store: Store) -> None:
    a = store.create_item(draft("a"), "ann")
    store.create_item(draft("b", depends_on=[a.id]), "ann")
    with pytest.raises(StateConflict, match="needed by item"):
        store.delete_item(a.id, "ann")


def _start(store: Store, item_id: int, run_id: str) -> None:
    item = store.get_item(item_id)
    store.start_run(NewRun(run_id, item_id, Role.CODER, "coder", 1, "/w", "/l"), item.state, "gangline")


def test_the_database_refuses_a_second_live_run_of_an_item(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    _start(store, item.id, "1-coder-1")
    with pytest.raises(StateConflict, match="running 1-coder-1"):
        _start(store, item.id, "1-coder-2")
    store.finish_run("1-coder-1", RunEnd(RunOutcome.SUCCEEDED, "completed"), "gangline")
    _start(store, item.id, "1-coder-2")


def test_a_run_cannot_start_for_an_item_that_moved(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    store.transition(item.id, Trigger.BLOCK, "ann", facts=Facts(reason="no"))
    with pytest.raises(StateConflict):
        store.start_run(NewRun("1-coder-1", item.id, Role.CODER, "c", 1, "/w", "/l"), item.state, "gangline")
    assert store.runs(item.id) == []


def test_the_ledger_sums_tokens_and_cost_per_item_profile_and_day(store: Store) -> None:
    a, b = store.create_item(draft("a"), "ann"), store.create_item(draft("b"), "ann")
    for item, run_id, cost in ((a, "1-coder-1", 0.5), (a, "1-coder-2", 0.25), (b, "2-coder-1", 1.0)):
        _start(store, item.id, run_id)
        usage = Usage(input_tokens=100, output_tokens=10, cache_read_input_tokens=5)
        store.finish_run(run_id, RunEnd(RunOutcome.SUCCEEDED, "ok", "s", usage, cost), "gangline")
    by_item = {row.key: row for row in store.ledger("item")}
    assert by_item["1"].cost_usd == 0.75 and by_item["1"].runs == 2 and by_item["1"].input_tokens == 200
    assert [(r.key, r.cost_usd) for r in store.ledger("profile")] == [("coder", 1.75)]
    assert [(r.key, r.runs) for r in store.ledger("day")] == [("2023-11-14", 3)]


def test_closing_a_run_twice_keeps_the_first_ending(store: Store) -> None:
    item = store.create_item(draft(), "ann")
    _start(store, item.id, "1-coder-1")
    store.finish_run("1-coder-1", RunEnd(RunOutcome.SUCCEEDED, "completed", cost_usd=0.1), "gangline")
    again = store.finish_run("1-coder-1", RunEnd(RunOutcome.CRASHED, "late"), "gangline")
    assert again.outcome is RunOutcome.SUCCEEDED and again.cost_usd == 0.1


def test_migrations_build_exactly_the_schema_the_queries_use(store: Store) -> None:
    live = inspect(store.engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in live.get_columns(table.name)} == set(table.columns.keys()), table.name


def test_reopening_keeps_everything_and_uses_wal(tmp_path: Path) -> None:
    first = open_sqlite(tmp_path / "state.db", Clock(1_700_000_000.0))
    first.create_item(draft(), "ann")
    first.close()
    again = open_sqlite(tmp_path / "state.db", Clock(1_700_000_000.0))
    assert [i.title for i in again.list_items()] == ["Add login"]
    with sqlite3.connect(tmp_path / "state.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_only_items_that_could_move_are_candidates_for_scheduling(store: Store) -> None:
    first = store.create_item(draft("first"), "ann")
    waiting = store.create_item(draft("waiting", depends_on=[first.id]), "ann")
    store.create_item(draft("frozen", frozen=True), "ann")
    held = store.create_item(draft("held"), "ann")
    store.hold(held.id, Trigger.BLOCK, "ann", "not yet")
    assert [c.id for c in store.candidates(Stage)] == [first.id]
    for trigger in (Trigger.START, Trigger.CODED, Trigger.QA_PASSED, Trigger.MERGED, Trigger.ARCHIVE):
        store.transition(first.id, trigger, "gangline", facts=Facts(commits_ahead=1, files_changed=1))
    assert [c.id for c in store.candidates(Stage)] == [first.id, waiting.id]  # an archived dependency counts as done


def test_listing_more_items_than_sqlite_takes_variables_keeps_every_criterion_and_dependency(tmp_path: Path) -> None:
    # A listing that named every item's id in its SQL would fail past SQLite's bound on variables
    # in one statement (and, below it, prepare a new statement for every count of items). The
    # bound depends on how SQLite was built (999 before 3.32, 32,766 upstream since, 250,000 in
    # Debian's build): it is set to 999 on the store's connections so 1,200 items cross it.
    store = open_sqlite(tmp_path / "state.db", Clock(1_700_000_000.0))  # SQLite's own bound, on SQLite

    @event.listens_for(store.engine, "connect")
    def _low_bound(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    store.engine.dispose()
    first = store.create_item(draft("first", criteria=[{"text": "a"}, {"text": "b", "checked": True}]), "ann")
    second = store.create_item(draft("second", depends_on=[first.id]), "ann")
    columns = ", ".join(c.name for c in metadata.tables["items"].columns if c.name != "id")
    with sqlite3.connect(tmp_path / "state.db") as raw:
        raw.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200) "
            f"INSERT INTO items ({columns}) SELECT {columns} FROM n, items WHERE items.id = ?",
            (second.id,),
        )
    for listing in (store.list_items(), store.list_items([Stage.BACKLOG])):
        assert len(listing) == 1202
        assert listing[0].criteria == (Criterion(text="a"), Criterion(text="b", checked=True))
        assert listing[1].depends_on == (first.id,) and listing[-1].depends_on == ()
    assert store.get_item(first.id).criteria == listing[0].criteria


def test_a_patient_store_refuses_a_zero_wait_that_would_spin(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spin"):
        open_sqlite(tmp_path / "state.db", busy_timeout_s=0, patient=True)
    assert not (tmp_path / "state.db").exists()


def test_the_revision_the_store_checks_for_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "gangline.store:migrations")
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_opening_a_database_at_the_newest_revision_reads_it_without_loading_alembic(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    open_sqlite(db).close()  # created and migrated
    code = "import sys; from gangline.store import open_sqlite; open_sqlite(__import__('pathlib').Path(sys.argv[1]))"
    code += "; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_database_from_before_the_chat_agent_keeps_its_runs_when_it_is_migrated(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    db = tmp_path / "state.db"
    engine = create_engine(f"sqlite:///{db}")
    config = Config()
    config.set_main_option("script_location", "gangline.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    engine.dispose()
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO items (slug, kind, title, body, priority, stage, frozen, retries, merge_attempts, "
                    "created_at, updated_at) VALUES ('x', 'story', 'X', '', 0, 'coding', 0, 0, 0, 1, 1)")  # fmt: skip
        raw.execute("INSERT INTO runs (id, item_id, role, profile, attempt, workspace, log_path, started_at, "
                    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, day) "
                    "VALUES ('1-coder-1', 1, 'coder', 'coder', 1, '/w', '/l', 1, 10, 2, 0, 0, 0.5, 'x')")  # fmt: skip
        raw.execute("INSERT INTO events (at, kind, actor, data) VALUES (1, 'note', 'ann', '{\"tool\": \"Bash\"}')")
    store = open_sqlite(db, Clock(1_700_000_000.0))  # migrated to the newest revision here
    assert [e.data for e in store.events_after(0)] == [{"tool": "Bash"}]  # its text is read as JSON
    (run,) = store.runs()
    assert (run.id, run.item_id, run.cost_usd, run.live) == ("1-coder-1", 1, 0.5, True)
    with pytest.raises(StateConflict):  # still one live run per item, after the table was rebuilt
        store.start_run(NewRun("1-coder-2", 1, Role.CODER, "coder", 2, "/w", "/l2"), store.get_item(1).state, "x")


def test_one_process_drives_a_database_at_a_time(database_url: str) -> None:
    with (
        closing(open_store(database_url, Clock(1_700_000_000.0))) as first,
        closing(open_store(database_url, Clock(1_700_000_000.0))) as second,
    ):
        refused = pytest.raises(ServerLockedError, match="another gangline server already drives the database")
        with first.driving(), refused, second.driving():
            pass
        with second.driving():  # the first let go when its block ended
            pass


def test_an_events_data_is_json_of_each_databases_own_kind_and_none_is_sql_null(store: Store) -> None:
    store.record_event("note", "ann", data={"tool": "Bash", "cost_usd": 0.25, "input": {"paths": ["a", "b"]}})
    store.record_event("plain", "ann")
    noted, plain = store.events_after(0)[-2:]
    assert noted.data == {"tool": "Bash", "cost_usd": 0.25, "input": {"paths": ["a", "b"]}} and plain.data == {}
    kind = {c["name"]: c["type"] for c in inspect(store.engine).get_columns("events")}["data"]
    assert type(kind).__name__ == ("JSONB" if store.engine.dialect.name == "postgresql" else "JSON")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events WHERE data IS NULL")).scalar() == 1


def test_a_postgresql_database_from_before_json_keeps_each_events_data(postgres: Cluster) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    url = postgres.database()
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", "gangline.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
        conn.execute(text("INSERT INTO events (at, kind, actor, data) VALUES (1, 'note', 'ann', '{\"n\": 7}')"))
        conn.execute(text("INSERT INTO events (at, kind, actor) VALUES (2, 'plain', 'ann')"))
    engine.dispose()
    with closing(open_store(url, Clock(1_700_000_000.0))) as store:  # migrated here: text to jsonb
        assert [e.data for e in store.events_after(0)] == [{"n": 7}, {}]
