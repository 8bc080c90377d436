"""The embedded gallery: one SQLite file (WAL, ``synchronous=FULL``, ``secure_delete``).

A write is answered once its transaction is on disk. After a delete the write-ahead log is
checkpointed and truncated, so deleted rows survive neither in the database file (zeroed by
``secure_delete``) nor in the log. The schema version is ``PRAGMA user_version``; older stores are
migrated forward when opened, newer ones refused.

Failures of the file itself (the disk full, a disk I/O error, the file read-only, locked by
another process for longer than ``StoreOptions.timeout_s``, or damaged) are
``StoreUnavailableError`` (503) with words; the transaction is rolled back, so nothing half
written stays, and the next write starts clean. Other SQLite errors are bugs and raised as they
are. A request waits at most ``timeout_s`` in all: for this process's lock on the connection,
then (SQLite's busy timeout, set to what is left) for another process's lock on the file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from service.gallery.availability import StoreOptions
from service.gallery.records import StoreUnavailableError, StoreVersionError
from service.gallery.store import GalleryStore

SCHEMA_VERSION = 3
"""The gallery schema this release writes. A store at an older version is migrated forward when
opened; one at a newer version is refused."""

MIGRATIONS: dict[int, str] = {
    2: """
    CREATE TABLE IF NOT EXISTS changes (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        kind          TEXT NOT NULL,
        sample_ids    TEXT NOT NULL DEFAULT '[]',
        model_version TEXT,
        at            REAL NOT NULL
    );
    """,
    3: """
    CREATE TABLE IF NOT EXISTS models (
        version    TEXT PRIMARY KEY,
        onnx       BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    """,
}
"""SQL that takes a store from version v - 1 to v, for v from 2 up to ``SCHEMA_VERSION``.
Version 1 is ``SCHEMA``; stores of releases before versioning read 0 and hold that schema."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (
    id          TEXT PRIMARY KEY,
    created_at  REAL NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS samples (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id  TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    condition   TEXT,
    view        TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    frames      INTEGER NOT NULL,
    silhouettes BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_subject ON samples(subject_id);
CREATE TABLE IF NOT EXISTS service_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    sample_id     INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    model_version TEXT NOT NULL,
    vector        BLOB NOT NULL,
    PRIMARY KEY (sample_id, model_version)
);
"""


# SQLite's primary result codes (https://sqlite.org/rescode.html) that mean the file cannot be
# used now, and what to tell the client; every other code is a bug
UNAVAILABLE = {
    5: "the gallery file is locked by another process",  # SQLITE_BUSY
    6: "the gallery file is locked",  # SQLITE_LOCKED
    7: "out of memory",  # SQLITE_NOMEM
    8: "the gallery file is read-only",  # SQLITE_READONLY
    10: "a disk I/O error on the gallery file",  # SQLITE_IOERR
    11: "the gallery file is damaged",  # SQLITE_CORRUPT
    13: "the disk holding the gallery is full",  # SQLITE_FULL
    14: "the gallery file cannot be opened",  # SQLITE_CANTOPEN
    15: "the gallery file is locked by another process",  # SQLITE_PROTOCOL
    26: "the gallery file is damaged",  # SQLITE_NOTADB
}
BY_MESSAGE = {  # Python 3.10's errors carry no code: their messages, as SQLite words them
    "database is locked": 5,
    "attempt to write a readonly database": 8,
    "disk I/O error": 10,
    "database disk image is malformed": 11,
    "database or disk is full": 13,
    "unable to open database file": 14,
    "file is not a database": 26,
}


def _result_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if code is not None else BY_MESSAGE.get(str(error))


class SqliteStore(GalleryStore):
    def __init__(self, path: str | Path, options: StoreOptions | None = None):
        super().__init__(options)
        self.path = Path(path)
        self.description = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = self._connect()
        self._checker: sqlite3.Connection | None = None  # the background check's own
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted content is overwritten, not left
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise
        self._watch.start()

    def _migrate(self) -> None:
        """Bring the store to ``SCHEMA_VERSION`` in one transaction that holds the write lock
        from the first read of the version, so two processes opening it at once migrate it
        once; a failed step leaves the store as it was."""
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{self.path} holds gallery schema {version}, written by a newer GaitLab; "
                    f"this release reads up to schema {SCHEMA_VERSION}: upgrade, or use another "
                    "data dir"
                )
            steps = [SCHEMA] if version < 1 else []  # new, or from before versioning (same tables)
            steps += [MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)]
            for script in steps:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _connect(self) -> sqlite3.Connection:
        # timeout: SQLite's busy timeout, the wait for another process's lock on the file
        return sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=self.options.timeout_s
        )

    def _close(self) -> None:
        with self._lock:
            self._db.close()
        if self._checker is not None:
            self._checker.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's lock on its connection, then the file's, waited for ``timeout_s`` in all:
        a write that waits on a locked file must not queue other uses of the store behind it
        for longer than each would wait itself."""
        timeout = self.options.timeout_s
        started = time.monotonic()
        if not self._lock.acquire(timeout=timeout):
            wait = self.options.retry_after_s
            raise StoreUnavailableError(
                f"the gallery file has been busy for over {timeout:g} s (another write of "
                f"this service is waiting on it); retry after {wait} s",
                wait,
            )
        try:
            left = max(0.0, timeout - (time.monotonic() - started))
            self._db.execute(f"PRAGMA busy_timeout = {round(1000 * left)}")
            yield
        finally:
            self._lock.release()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the store's lock; rolled back on any error,
        a failed ``COMMIT`` included (SQLite rolls some back itself: a full disk, an I/O
        error), so the connection is never left inside a transaction."""
        with self._locked():
            if self._db.in_transaction:  # a ROLLBACK that failed too (an I/O error) left one
                self._db.execute("ROLLBACK")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):  # the error being raised says more
                        self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._locked():
            return self._db.execute(sql, params).fetchall()

    def _unavailable(self, error: Exception) -> tuple[str, bool] | None:
        """A failure of the file is this operation's, not a whole store down: the next one
        tries again (at once: they fail fast on their own, or within the busy timeout)."""
        if not isinstance(error, sqlite3.Error) or isinstance(error, sqlite3.ProgrammingError):
            return None
        reason = UNAVAILABLE.get(_result_code(error))
        return (reason, False) if reason else None

    def _reconnect(self) -> None:
        pass  # its one connection is to a file: nothing was lost

    def _check(self) -> bool:
        """The file's write lock can be taken within ``timeout_s`` (no other process holds it
        longer): ``BEGIN IMMEDIATE`` and ``ROLLBACK``, on a connection of the check's own, so
        that a check waits on no request and no request on it. A full disk or a file that
        refuses writes shows only when a write fails: its request says so."""
        if self._checker is None:
            self._checker = self._connect()
        try:
            self._checker.execute("BEGIN IMMEDIATE")
            self._checker.execute("ROLLBACK")
        except sqlite3.Error:
            if self._checker.in_transaction:  # never left holding the file's lock
                self._checker.close()
                self._checker = None
            raise
        return False

    def _after_delete(self) -> None:
        self.checkpoint()

    def try_refresh_lock(self) -> bool:
        return True  # one process serves an embedded gallery: its refresher decides

    def release_refresh_lock(self) -> None:
        pass

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it, so deleted rows
        survive in neither (``secure_delete`` zeroes them in the database file)."""
        with self._locked():
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
