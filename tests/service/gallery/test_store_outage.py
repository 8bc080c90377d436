"""service.gallery.store when the store cannot be used, for real: a PostgreSQL server stopped
and crashed under the store (a server of this module's own), its write lock held elsewhere; a
SQLite file locked by another process, its disk full (``max_page_count``: SQLite's own
``SQLITE_FULL``, or a real full filesystem in ``tests/service/test_store_outage.py``), the file
refusing writes. Each is ``StoreUnavailableError`` (503, with words and ``Retry-After``) within
the store's timeout, nothing acknowledged is lost, and the store works again afterwards."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from service.gallery import open_store
from service.gallery.postgres import WRITE_LOCK
from service.gallery.sqlite import SqliteStore
from service.gallery.store import StoreOptions, StoreUnavailableError

OPTIONS = StoreOptions(timeout_s=0.5, check_s=0.1)
FAST_S = 0.1  # a refusal while the store is known to be down takes less than this


def clip(frames: int = 5) -> np.ndarray:
    silhouettes = np.zeros((frames, 64, 44), np.uint8)
    silhouettes[:, 5:60, 10:30] = 255
    return silhouettes


def enroll(store, name: str):
    return store.add_sample(name, clip(), np.ones(8, np.float32), "v1")


def refused(store, name: str) -> tuple[StoreUnavailableError, float]:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        enroll(store, name)
    error = caught.value
    assert (error.status, error.code) == (503, "store_unavailable")
    assert error.headers["Retry-After"] == "1"
    return error, time.monotonic() - started


def wait_for(condition, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


# --- PostgreSQL


@pytest.mark.slow
def test_postgres_away_fails_fast_and_is_used_again_at_once(own_postgres):
    """A fast stop here; a crash too in tests/service/test_store_outage.py."""
    store = open_store(own_postgres.new_database(), OPTIONS)
    try:
        kept = [enroll(store, "before").id]
        own_postgres.take_away("stop")
        error, took = refused(store, "during")
        assert "unavailable" in error.detail
        assert took < OPTIONS.timeout_s
        assert not store.status.up  # marked down by the request that found it so
        for _ in range(20):  # refused at once while down: no wait on the pool
            error, took = refused(store, "during")
            assert took < FAST_S
        assert "has been unavailable for" in error.detail
        with pytest.raises(StoreUnavailableError):
            store.get_subject("before")  # reads too
        time.sleep(3 * OPTIONS.check_s)
        assert not store.status.up  # the background check finds it still away

        own_postgres.bring_back()
        back = time.monotonic()
        wait_for(lambda: store.status.up, timeout=5)
        kept.append(enroll(store, "after").id)
        print(f"the first write {time.monotonic() - back:.2f} s after the return")
        assert time.monotonic() - back < 2.0
        assert [s.id for s in store.get_subject("before").samples] == kept[:1]
        assert store.sample_count() == 2  # nothing refused was stored
    finally:
        store.close()


@pytest.mark.slow
def test_postgres_write_lock_held_elsewhere_is_a_bounded_refusal_not_an_outage(own_postgres):
    import psycopg

    url = own_postgres.new_database()
    store = open_store(url, OPTIONS)
    try:
        with psycopg.connect(url, autocommit=True) as other:  # another replica's stuck write
            other.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            error, took = refused(store, "blocked")
            assert "write lock" in error.detail
            assert OPTIONS.timeout_s <= took < OPTIONS.timeout_s + 0.5
            assert store.status.up  # the database answers: nothing fails fast
            assert store.list_subjects()[1] == 0
        enroll(store, "free")
    finally:
        store.close()


# --- SQLite


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqliteStore(tmp_path / "gallery.db", OPTIONS)
    yield store
    store.close()


def test_sqlite_disk_full_is_a_503_and_the_store_writes_again_once_there_is_room(sqlite_store):
    store = sqlite_store
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 4}")  # SQLite's own SQLITE_FULL
    acknowledged, full = [], None
    while full is None and len(acknowledged) < 1000:
        try:
            acknowledged.append(enroll(store, f"s{len(acknowledged)}").id)
        except StoreUnavailableError as error:
            full = error
    assert 0 < len(acknowledged) < 1000  # some fitted, then the disk was full
    assert "disk holding the gallery is full" in full.detail
    refused(store, "still-full")  # not stuck inside a transaction: refused the same way
    assert [s for s, _ in store.list_subjects(limit=1000)[0]] == sorted(
        f"s{n}" for n in range(len(acknowledged))
    )
    store._db.execute("PRAGMA max_page_count = 1073741823")
    enroll(store, "room-again")
    assert store.sample_count() == len(acknowledged) + 1


@contextmanager
def locked_by_another_process(path):
    """A process that holds the SQLite file's write lock until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_sqlite_file_locked_by_another_process_is_refused_in_bounded_time(sqlite_store, tmp_path):
    store = sqlite_store
    enroll(store, "before")
    with locked_by_another_process(tmp_path / "gallery.db"):
        took = []

        def write(n: int) -> None:  # four writes at once: none waits behind another's wait
            took.append(refused(store, f"w{n}")[1])

        writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        assert len(took) == 4
        assert max(took) < OPTIONS.timeout_s + 0.3, took
        assert store.get_subject("before").samples  # reads go on (WAL)
        wait_for(lambda: not store.status.up, timeout=3)  # the check cannot take the lock
        assert "locked by another process" in store.status.reason
    enroll(store, "after")
    wait_for(lambda: store.status.up, timeout=3)
    assert store.sample_count() == 2


@pytest.fixture
def immutable(tmp_path):
    """Make files refuse every write (``chattr +i``, as root on a filesystem that has it), and
    writable again at the end; skips where that cannot be done here."""
    made: list = []

    def make(*paths):
        for path in paths:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
            if done.returncode != 0:
                pytest.skip(f"chattr +i is not possible here: {done.stderr!r}")
            made.append(path)

    def undo():
        while made:
            subprocess.run(["chattr", "-i", str(made.pop())], check=True)

    make.undo = undo
    yield make
    undo()


def test_sqlite_file_refusing_writes_is_a_503_and_a_committed_delete_is_still_answered(
    sqlite_store, tmp_path, immutable, caplog
):
    store = sqlite_store
    first, second = enroll(store, "a"), enroll(store, "b")
    store.checkpoint()
    db, wal = tmp_path / "gallery.db", tmp_path / "gallery.db-wal"

    immutable(db)  # the write-ahead log takes the delete; its checkpoint into the file fails
    with caplog.at_level(logging.ERROR, logger="gaitlab.store"):
        assert store.delete_subject("a") == [first.id]
    assert "erasure step after a delete failed" in caplog.text
    immutable(wal)  # now nothing can be written
    error, _ = refused(store, "c")
    assert "disk I/O error" in error.detail or "read-only" in error.detail
    assert [s.id for s in store.get_subject("b").samples] == [second.id]

    immutable.undo()
    enroll(store, "c")
    assert sorted(s for s, _ in store.list_subjects()[0]) == ["b", "c"]
