"""service.gallery.store on both backends — a real SQLite file and a real (throwaway)
PostgreSQL server: durable writes, cascading deletes, paging and filters, schema versions and
migrations, metadata checked before anything is stored; SQLite's erasure on disk."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from gaitlab.cli import main
from service.gallery import open_store
from service.gallery import sqlite as sqlite_module
from service.gallery.records import pack_silhouettes
from service.gallery.sqlite import SCHEMA, SCHEMA_VERSION, SqliteStore
from service.gallery.store import (
    InvalidMetadataError,
    NewSample,
    SampleNotFoundError,
    StoreVersionError,
    SubjectNotFoundError,
)


def clip(frames: int, value: int = 255) -> np.ndarray:
    silhouettes = np.zeros((frames, 64, 44), np.uint8)
    silhouettes[:, 5:60, 10:30] = value
    return silhouettes


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """The same tests on each backend (PostgreSQL: a fresh database on a throwaway server)."""
    if request.param == "sqlite":
        target = tmp_path / "gallery.db"
    else:
        target = request.getfixturevalue("postgres_url")
    store = open_store(target)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqliteStore(tmp_path / "gallery.db")
    yield store
    store.close()


def test_enroll_then_read_back_everything(store):
    vector = np.arange(8, dtype=np.float32)
    sample = store.add_sample("alice", clip(12), vector, "v1", condition="nm-01", view="090")
    subject = store.get_subject("alice")
    assert [s.id for s in subject.samples] == [sample.id]
    assert subject.samples[0].view == "090"
    assert subject.samples[0].frames == 12
    np.testing.assert_array_equal(store.silhouettes(sample.id), clip(12))
    found = store.embeddings("v1")
    assert found.subject_ids == ["alice"]
    np.testing.assert_array_equal(found.vectors[0], vector)
    assert len(store.embeddings("v2").sample_ids) == 0


def test_listing_is_paged_and_counts_samples(store):
    for name in ("c", "a", "b"):
        store.add_sample(name, clip(3), np.zeros(4, np.float32), "v1")
    store.add_sample("a", clip(3), np.zeros(4, np.float32), "v1")
    page, total = store.list_subjects(offset=0, limit=2)
    assert total == 3
    assert page == [("a", 2), ("b", 1)]
    assert store.list_subjects(offset=2, limit=2)[0] == [("c", 1)]


def test_deleting_a_subject_removes_its_samples_and_embeddings(store):
    kept = store.add_sample("bob", clip(4), np.ones(4, np.float32), "v1")
    gone = [store.add_sample("eve", clip(4), np.ones(4, np.float32), "v1").id for _ in range(2)]
    assert sorted(store.delete_subject("eve")) == sorted(gone)
    with pytest.raises(SubjectNotFoundError):
        store.get_subject("eve")
    with pytest.raises(SampleNotFoundError):
        store.silhouettes(gone[0])
    assert store.embeddings("v1").sample_ids.tolist() == [kept.id]
    assert store.samples_missing("v1") == []  # no orphan embeddings, no orphan samples
    with pytest.raises(SubjectNotFoundError):
        store.delete_subject("eve")


def test_deleting_one_sample(store):
    first = store.add_sample("bob", clip(4), np.ones(4, np.float32), "v1")
    second = store.add_sample("bob", clip(5), np.ones(4, np.float32), "v1")
    store.delete_sample("bob", first.id)
    assert [s.id for s in store.get_subject("bob").samples] == [second.id]
    with pytest.raises(SampleNotFoundError):
        store.delete_sample("bob", first.id)
    with pytest.raises(SampleNotFoundError):
        store.delete_sample("someone-else", second.id)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_writes_survive_reopening(request, tmp_path, backend):
    target = (
        tmp_path / "gallery.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    )
    first = open_store(target)
    sample = first.add_sample("carol", clip(7), np.full(4, 2, np.float32), "v1")
    first.close()
    again = open_store(target)
    assert again.get_subject("carol").samples[0].id == sample.id
    np.testing.assert_array_equal(again.silhouettes(sample.id), clip(7))
    assert again.schema_version == SCHEMA_VERSION
    again.close()


def test_sqlite_runs_in_wal_mode(sqlite_store):
    assert sqlite_store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_nothing_behind(store):
    with pytest.raises(ValueError, match=r"\[T, 64, 44\]"):
        store.add_sample("dave", np.zeros((3, 64, 64), np.uint8), np.zeros(4, np.float32), "v1")
    assert store.list_subjects()[1] == 0


def _files_bytes(path) -> bytes:
    """The database file and its write-ahead log, as they are on disk."""
    found = b""
    for suffix in ("", "-wal"):
        part = path.parent / (path.name + suffix)
        if part.exists():
            found += part.read_bytes()
    return found


def test_sqlite_erasure_leaves_no_trace_in_the_files_on_disk(sqlite_store):
    store = sqlite_store
    rng = np.random.default_rng(7)
    keep = clip(6)
    secret = (rng.random((9, 64, 44)) > 0.5).astype(np.uint8) * 255  # incompressible: unique
    secret_vector = rng.standard_normal(128).astype(np.float32)
    store.add_sample("keep", keep, np.ones(128, np.float32), "m1")
    sample = store.add_sample("erase-me", secret, secret_vector, "m1", metadata={"tag": "x"})
    packed = pack_silhouettes(secret)
    path = store.path
    store.checkpoint()  # before: a checkpoint copies everything into the database file
    before = _files_bytes(path)
    assert packed[:64] in before
    assert secret_vector.tobytes() in before
    assert b"erase-me" in before

    store.delete_subject("erase-me")
    after = _files_bytes(path)
    assert packed[:64] not in after
    assert secret_vector.tobytes() not in after
    assert b"erase-me" not in after
    assert not store.has_sample(sample.id)
    assert store.get_subject("keep").samples[0].frames == 6  # the rest is intact


def test_a_store_from_before_versioning_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA)  # what releases before schema versioning wrote
    old.execute("INSERT INTO subjects (id, created_at) VALUES ('alice', 1.0)")
    old.commit()
    old.close()
    store = open_store(path)
    assert store.schema_version == SCHEMA_VERSION == 3
    assert store.get_subject("alice").id == "alice"
    assert store.change_position() == 0  # the change log (schema 2) was added, empty
    assert store.get_model("none") is None  # and the models table (schema 3)
    store.close()
    assert open_store(path).schema_version == 3  # opened again: nothing to do


def test_a_store_from_a_newer_release_is_refused_with_a_clear_message(tmp_path, capsys):
    path = tmp_path / "data" / "gallery.db"
    open_store(path).close()
    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version = 99")
    newer.close()
    with pytest.raises(StoreVersionError, match="schema 99, written by a newer GaitLab"):
        open_store(path)
    assert main(["serve", "--data-dir", str(tmp_path / "data")]) == 2
    assert "newer GaitLab" in capsys.readouterr().err


def test_forward_migrations_run_in_order_each_atomic(tmp_path, monkeypatch):
    path = tmp_path / "g.db"
    open_store(path).close()
    real, now = dict(sqlite_module.MIGRATIONS), sqlite_module.SCHEMA_VERSION
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", now + 2)
    monkeypatch.setattr(
        sqlite_module,
        "MIGRATIONS",
        {
            **real,
            now + 1: "ALTER TABLE subjects ADD COLUMN note TEXT;",
            now + 2: "UPDATE subjects SET note = 'later';",
        },
    )
    store = open_store(path)
    assert store.schema_version == now + 2
    store.close()
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", now + 3)
    half_good = "ALTER TABLE subjects ADD COLUMN y TEXT; THIS IS NOT SQL;"
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", {now + 3: half_good})
    with pytest.raises(sqlite3.Error):
        open_store(path)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == now + 2  # nothing of the step
    columns = [row[1] for row in check.execute("PRAGMA table_info(subjects)")]
    assert "note" in columns
    assert "y" not in columns  # not even its first statement
    check.close()


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}, "nested"),
        ({"x": "\ud800"}, "surrogate"),
        ({"x": float("nan")}, "JSON"),
        ({"x": "y" * 5000}, "bytes"),
        (["not", "an", "object"], "object"),
    ],
)
def test_metadata_that_cannot_be_stored_is_refused_before_the_transaction(store, metadata, words):
    statements: list[str] = []
    if isinstance(store, SqliteStore):  # see that no transaction even began
        store._db.set_trace_callback(statements.append)
    with pytest.raises(InvalidMetadataError, match=words):
        store.add_sample("s", np.zeros((3, 64, 44), np.uint8), np.ones(8), "v1", metadata=metadata)
    assert not any(s.startswith("BEGIN") for s in statements)
    with pytest.raises(SubjectNotFoundError):
        store.get_subject("s")


def test_metadata_nested_thousands_deep_is_measured_not_overflowed(store):
    deep: dict = {}
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(InvalidMetadataError, match="nested more than 8"):
        store.add_sample("s", np.zeros((3, 64, 44), np.uint8), np.ones(8), "v1", metadata=deep)


def test_listing_filters_by_id_literally(store):
    for name in ("Anna_1", "anna-2", "ben", "a%b"):
        store.add_sample(name, clip(3), np.zeros(4, np.float32), "v1")
    assert store.list_subjects(contains="ANNA")[0] == [("Anna_1", 1), ("anna-2", 1)]
    assert store.list_subjects(contains="a_")[0] == [("Anna_1", 1)]  # "_" is not a wildcard
    assert store.list_subjects(contains="%")[0] == [("a%b", 1)]
    assert store.list_subjects(contains="zzz") == ([], 0)


def test_embeddings_are_replaced_dropped_and_reported_missing(store):
    first = store.add_sample("a", clip(3), np.zeros(4, np.float32), "v1")
    second = store.add_sample("b", clip(3), np.zeros(4, np.float32), "v1")
    assert store.samples_missing("v2") == [first.id, second.id]
    store.put_embeddings([first.id, 999999], "v2", np.ones((2, 4), np.float32))  # 999999: gone
    store.put_embedding(first.id, "v2", np.full(4, 3, np.float32))  # replaces
    assert store.samples_missing("v2") == [second.id]
    np.testing.assert_array_equal(store.embeddings("v2").vectors, np.full((1, 4), 3, np.float32))
    assert store.drop_embeddings_except("v2") == 2
    assert store.drop_embeddings_of("v2") == 1
    assert store.sample_count() == 2


def test_service_state_and_ping(store):
    assert store.get_state("active_model") is None
    store.set_state("active_model", "a")
    store.set_state("active_model", "b")
    assert store.get_state("active_model") == "b"
    assert store.ping()


def test_a_postgres_store_from_a_newer_release_is_refused(postgres_url):
    import psycopg

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("UPDATE gaitlab_schema SET version = 99")
    with pytest.raises(StoreVersionError, match="schema 99, written by a newer GaitLab"):
        open_store(postgres_url)


def test_postgres_replicas_opening_together_create_the_schema_once(postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: open_store(postgres_url), range(4)))
    stores[0].add_sample("x", clip(3), np.zeros(4, np.float32), "v1")
    assert [s.list_subjects()[1] for s in stores] == [1, 1, 1, 1]  # one database, seen by all
    for store in stores:
        store.close()


def test_every_write_is_logged_in_commit_order(store):
    start = store.change_position()
    a = store.add_sample("a", clip(3), np.zeros(4, np.float32), "v1")
    b, c = store.add_samples(
        [
            NewSample("b", clip(3), np.zeros(4, np.float32)),
            NewSample("b", clip(4), np.zeros(4, np.float32)),
        ],
        "v1",
    )
    store.delete_sample("b", b.id)
    store.delete_subject("a")
    with pytest.raises(SubjectNotFoundError):
        store.delete_subject("a")  # refused writes log nothing
    changes = store.changes_since(start)
    assert [(ch.kind, ch.sample_ids, ch.model_version) for ch in changes] == [
        ("enroll", [a.id], "v1"),
        ("enroll", [b.id, c.id], "v1"),
        ("delete", [b.id], None),
        ("delete", [a.id], None),
    ]
    assert [ch.id for ch in changes] == sorted(ch.id for ch in changes)
    assert store.change_position() == changes[-1].id
    assert store.changes_since(changes[1].id, limit=1)[0].kind == "delete"
    found = store.embeddings_of([a.id, c.id, 999], "v1")
    assert found.sample_ids.tolist() == [c.id]  # a was deleted; 999 never existed


def test_the_change_log_keeps_its_retention_and_always_the_newest_change(store):
    vector = np.zeros(4, np.float32)
    for subject in "abc":  # within the retention (a week by default): all kept
        store.add_sample(subject, clip(3), vector, "v1")
    assert len(store.changes_since(0)) == 3
    assert store.first_change_position() == store.changes_since(0)[0].id
    store.change_retention_s, store.prune_every_s = 0.0, 0.0  # everything older is due
    last = store.add_sample("d", clip(3), vector, "v1")
    (kept,) = store.changes_since(0)  # the writes before it are gone, the newest stays
    assert (kept.kind, kept.sample_ids) == ("enroll", [last.id])
    assert store.first_change_position() == store.change_position() == kept.id
    store.delete_sample("d", last.id)
    (newest,) = store.changes_since(0)
    assert newest.kind == "delete"
    assert newest.id > kept.id


def test_one_refresh_at_a_time_across_postgres_replicas(postgres_url):
    first, second = open_store(postgres_url), open_store(postgres_url)
    assert first.try_refresh_lock()
    assert not second.try_refresh_lock()
    assert not first.try_refresh_lock()  # not twice in one process either
    first.release_refresh_lock()
    assert second.try_refresh_lock()
    second.close()  # closing frees it too
    assert first.try_refresh_lock()
    first.close()


def test_models_are_kept_in_the_store_for_replicas(store):
    assert store.get_model("m1") is None
    store.put_model("m1", b"\x00onnx bytes\xff")
    store.put_model("m1", b"ignored: a version is its content")
    assert store.get_model("m1") == b"\x00onnx bytes\xff"


def test_postgres_deletes_are_vacuumed(postgres_url):
    """What can be checked of erasure on PostgreSQL: deleted rows are gone from every query at
    once, and the store has VACUUMed the gallery tables (dead row versions reclaimed, not left
    for autovacuum). Their bytes may remain in free space until overwritten: the README says so."""
    import psycopg

    def vacuums(connection) -> int:
        """How often ``samples`` was VACUUMed by hand (not by autovacuum), per the statistics."""
        row = connection.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'samples'"
        ).fetchone()
        return int(row[0]) if row else 0

    store = open_store(postgres_url)
    sample = store.add_sample("erase-me", clip(5), np.ones(8, np.float32), "v1")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        before = vacuums(connection)  # a reused database may have been vacuumed already
        store.delete_subject("erase-me")
        assert connection.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0
        assert connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 0
        deadline = time.monotonic() + 10  # the statistics arrive a moment later
        while vacuums(connection) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert vacuums(connection) > before  # this delete vacuumed
    assert not store.has_sample(sample.id)
    store.close()
