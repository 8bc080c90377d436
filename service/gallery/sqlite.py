"""The embedded gallery: one SQLite file (WAL, ``synchronous=FULL``, ``secure_delete``).

A write is answered once its transaction is on disk. After a delete the write-ahead log is
checkpointed and truncated, so deleted rows survive neither in the database file (zeroed by
``secure_delete``) nor in the log. The schema version is ``PRAGMA user_version``; older stores are
migrated forward when opened, newer ones refused.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.gallery.records import StoreVersionError
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


class SqliteStore(GalleryStore):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.description = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted content is overwritten, not left
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

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

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the store's lock; rolls back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _after_delete(self) -> None:
        self.checkpoint()

    def try_refresh_lock(self) -> bool:
        return True  # one process serves an embedded gallery: its refresher decides

    def release_refresh_lock(self) -> None:
        pass

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it, so deleted rows
        survive in neither (``secure_delete`` zeroes them in the database file)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
