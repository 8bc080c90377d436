"""The shared gallery: PostgreSQL through psycopg 3 and a connection pool, for replicas.

Set ``GAITLAB_DATABASE_URL=postgresql://user:password@host:5432/db``. A write is answered once its
transaction has committed (``synchronous_commit`` as the server has it: ``on`` by default, so on
the server's disk). Tables are created, or migrated forward, when a store is opened, under an
advisory lock so that replicas starting together do it once; the schema version is a row of
``gaitlab_schema``, and a newer one than this release reads is refused.

Erasure: a ``DELETE`` makes rows invisible at once, but PostgreSQL's MVCC leaves the old row
versions in the table's pages until ``VACUUM`` reclaims them, and the write-ahead log keeps them
until its segments are recycled. After every delete the store runs ``VACUUM`` on the gallery
tables, which frees the dead rows for reuse; their bytes may stay in free space of the files
until overwritten. The README says what that means for operators.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.gallery.records import StoreVersionError
from service.gallery.store import GalleryStore

SCHEMA_VERSION = 3
MIGRATIONS: dict[int, str] = {
    2: """
    CREATE TABLE IF NOT EXISTS changes (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind          TEXT NOT NULL,
        sample_ids    TEXT NOT NULL DEFAULT '[]',
        model_version TEXT,
        at            DOUBLE PRECISION NOT NULL
    );
    """,
    3: """
    CREATE TABLE IF NOT EXISTS models (
        version    TEXT PRIMARY KEY,
        onnx       BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
}
"""SQL that takes a store from version v - 1 to v, for v from 2 up to ``SCHEMA_VERSION``."""
SCHEMA_LOCK = 0x6761_6974  # advisory lock key held while the schema is created or migrated
WRITE_LOCK = 0x6761_6975  # held by every write: commits, and so change ids, come in one order
CHANNEL = "gaitlab_changes"  # NOTIFY'd by every write, LISTENed to by replicas
REFRESH_LOCK = 0x6761_6976  # held (for the session) by the one replica running a refresh

SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (
    id          TEXT PRIMARY KEY,
    created_at  DOUBLE PRECISION NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS samples (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id  TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    created_at  DOUBLE PRECISION NOT NULL,
    condition   TEXT,
    view        TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    frames      INTEGER NOT NULL,
    silhouettes BYTEA NOT NULL
);
ALTER TABLE samples ALTER COLUMN silhouettes SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS samples_by_subject ON samples(subject_id);
CREATE TABLE IF NOT EXISTS service_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    sample_id     BIGINT NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    model_version TEXT NOT NULL,
    vector        BYTEA NOT NULL,
    PRIMARY KEY (sample_id, model_version)
);
CREATE TABLE IF NOT EXISTS gaitlab_schema (version INTEGER NOT NULL);
"""
GALLERY_TABLES = ("subjects", "samples", "embeddings")


def _placeholders(sql: str) -> str:
    """The interface's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A psycopg connection that takes the interface's SQL."""

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql: str, params: tuple = ()):
        return self.connection.execute(_placeholders(sql), params)


class PostgresStore(GalleryStore):
    def __init__(self, url: str, min_size: int = 1, max_size: int = 8):
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as error:  # the postgres extra
            raise RuntimeError(
                "GAITLAB_DATABASE_URL names PostgreSQL: install the postgres extra "
                "(pip install 'gaitlab[postgres]')"
            ) from error
        self.url = url
        self.description = _redacted(url)
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=True,
            kwargs={"autocommit": True, "connect_timeout": 10},
            configure=_read_committed,
        )
        self._vacuum_lock = threading.Lock()
        self._listener = None  # the replica's LISTEN connection, opened on first wait
        self._refresh_holder = None  # the connection holding REFRESH_LOCK during a refresh
        try:
            self._pool.wait(timeout=30)
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _migrate(self) -> None:
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            connection.execute("CREATE TABLE IF NOT EXISTS gaitlab_schema (version INTEGER)")
            row = connection.execute("SELECT version FROM gaitlab_schema").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{self.description} holds gallery schema {version}, written by a newer "
                    f"GaitLab; this release reads up to schema {SCHEMA_VERSION}: upgrade it"
                )
            if row is None:  # a new database: schema 1 (run once, not at every start)
                connection.execute(SCHEMA)
                connection.execute("INSERT INTO gaitlab_schema (version) VALUES (1)")
                version = 1
            for target in range(version + 1, SCHEMA_VERSION + 1):
                connection.execute(MIGRATIONS[target])
                connection.execute("UPDATE gaitlab_schema SET version = %s", (target,))

    @property
    def schema_version(self) -> int:
        return int(self._read("SELECT version FROM gaitlab_schema")[0][0])

    def try_refresh_lock(self) -> bool:
        """A session-level advisory lock on a connection of its own, held until released (or
        until this process dies: the server then frees it)."""
        import psycopg

        if self._refresh_holder is not None:
            return False
        holder = psycopg.connect(self.url, autocommit=True)
        if holder.execute("SELECT pg_try_advisory_lock(%s)", (REFRESH_LOCK,)).fetchone()[0]:
            self._refresh_holder = holder
            return True
        holder.close()
        return False

    def release_refresh_lock(self) -> None:
        if self._refresh_holder is not None:
            self._refresh_holder.close()
            self._refresh_holder = None

    def close(self) -> None:
        self.release_refresh_lock()
        if self._listener is not None:
            self._listener.close()
        self._pool.close()

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        """One transaction under the write lock (so change ids are committed in order), which
        wakes the replicas on commit."""
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield _Connection(connection)
            connection.execute(f"NOTIFY {CHANNEL}")

    def wait_for_change(self, timeout: float) -> None:
        """LISTEN on a connection of its own; returns on a notification or after ``timeout``."""
        if self._listener is None:
            import psycopg

            self._listener = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            self._listener.execute(f"LISTEN {CHANNEL}")
        import psycopg

        try:
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:  # the connection went away: open a new one next time
            self._listener.close()
            self._listener = None
            raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._pool.connection() as connection:
            return connection.execute(_placeholders(sql), params).fetchall()

    def _after_delete(self) -> None:
        """VACUUM the gallery tables: dead row versions are reclaimed, not left for later."""
        with self._vacuum_lock, self._pool.connection() as connection:
            connection.execute(f"VACUUM {', '.join(GALLERY_TABLES)}")


def _read_committed(connection) -> None:
    """Whatever the server's default: each statement sees what committed before it — the
    write lock's ordering and the stale-model check rely on it."""
    import psycopg

    connection.isolation_level = psycopg.IsolationLevel.READ_COMMITTED


def _redacted(url: str) -> str:
    """The URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
