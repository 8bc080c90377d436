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

When the server goes away (``docs/service/outages.md``): a request that loses its connection
gets ``StoreUnavailableError`` (503) and marks the store down; from then on requests are refused
at once, without touching the pool, until the background check (a connection of its own, never
the pool's) reaches the server again, opens a fresh pool and marks it up. No wait is longer
than ``StoreOptions.timeout_s``: for a connection from the pool, or for the write lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.gallery.availability import StoreOptions
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
    fails_fast = True

    def __init__(
        self, url: str, options: StoreOptions | None = None, min_size: int = 1, max_size: int = 8
    ):
        super().__init__(options)
        try:
            import psycopg_pool  # noqa: F401
        except ImportError as error:  # the postgres extra
            raise RuntimeError(
                "GAITLAB_DATABASE_URL names PostgreSQL: install the postgres extra "
                "(pip install 'gaitlab[postgres]')"
            ) from error
        self.url = url
        self.description = _redacted(url)
        self._sizes = (min_size, max_size)
        self._pool = self._open_pool()
        self._pools_opened = 1  # a connection made beside an earlier pool predates an outage
        self._vacuum_lock = threading.Lock()
        self._listener = None  # the replica's LISTEN connection, opened on first wait
        self._listener_pool = 0  # … beside which pool
        self._checker = None  # the background check's own connection
        self._refresh_holder = None  # the connection holding REFRESH_LOCK during a refresh
        try:
            self._pool.wait(timeout=30)
            self._migrate()
        except BaseException:
            self._pool.close()
            raise
        self._watch.start()

    def _connect_options(self) -> dict:
        """For every connection: autocommit, and a connect timeout (libpq's least is 2 s)."""
        return {"autocommit": True, "connect_timeout": max(2, math.ceil(self.options.timeout_s))}

    def _open_pool(self):
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            self.url,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            open=True,
            timeout=self.options.timeout_s,  # a request's wait for a connection
            kwargs=self._connect_options(),
            configure=_read_committed,
        )

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
        with self._access():
            holder = psycopg.connect(self.url, **self._connect_options())
            try:
                sql = "SELECT pg_try_advisory_lock(%s)"
                locked = holder.execute(sql, (REFRESH_LOCK,)).fetchone()[0]
            except BaseException:
                holder.close()
                raise
        if locked:
            self._refresh_holder = holder
            return True
        holder.close()
        return False

    def release_refresh_lock(self) -> None:
        if self._refresh_holder is not None:
            self._refresh_holder.close()
            self._refresh_holder = None

    def _close(self) -> None:
        self.release_refresh_lock()
        for connection in (self._listener, self._checker):
            if connection is not None:
                connection.close()
        self._pool.close()

    @contextmanager
    def _transaction(self) -> Iterator[_Connection]:
        """One transaction under the write lock (so change ids are committed in order), which
        wakes the replicas on commit. The lock is waited for at most ``timeout_s``: a write of
        another replica stuck on a connection the server has not yet seen lost must not hold
        up every write (``lock_timeout``, for this transaction only)."""
        lock_timeout = f"{max(1, round(1000 * self.options.timeout_s))}ms"
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield _Connection(connection)
            connection.execute(f"NOTIFY {CHANNEL}")

    def wait_for_change(self, timeout: float) -> None:
        """LISTEN on a connection of its own; returns on a notification or after ``timeout``.
        A listener opened before an outage is replaced (the server it listened to is gone)."""
        import psycopg

        with self._access():
            if self._listener is not None and self._listener_pool != self._pools_opened:
                self._listener.close()
                self._listener = None
            if self._listener is None:
                self._listener = psycopg.connect(self.url, **self._connect_options())
                self._listener_pool = self._pools_opened
                self._listener.execute(f"LISTEN {CHANNEL}")
            try:
                for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                    pass
            except psycopg.Error:  # the connection went away: open a new one next time
                self._listener.close()
                self._listener = None
                raise

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._pool.connection() as connection:
            return connection.execute(_placeholders(sql), params).fetchall()

    def _unavailable(self, error: Exception) -> tuple[str, bool] | None:
        import psycopg
        from psycopg_pool import PoolTimeout

        waited = f"{self.options.timeout_s:g} s"
        if isinstance(error, PoolTimeout):
            return f"no database connection came free within {waited}", False
        if isinstance(error, psycopg.errors.LockNotAvailable):
            return f"another write held the gallery's write lock for over {waited}", False
        if not isinstance(error, psycopg.OperationalError):
            return None
        state = error.sqlstate  # None: the client's side (refused, lost, closed, pool closed)
        if state is None or state.startswith(("08", "57P")) or state == "53300":
            return "the database cannot be reached: its connection was refused or lost", True
        return f"the database refused the operation (SQLSTATE {state})", False

    def _check(self) -> bool:
        """``SELECT 1`` on the check's own connection, never one of the pool's: a check waits
        on no request. An open connection that fails, then a new one that works, means the
        server restarted: True (the pool's connections are lost too)."""
        import psycopg

        lost = False
        if self._checker is not None:
            try:
                self._checker.execute("SELECT 1")
                return False
            except psycopg.Error:
                self._checker.close()
                self._checker, lost = None, True
        # tcp_user_timeout: a server that stops acknowledging fails the check, not hangs it
        self._checker = psycopg.connect(
            self.url,
            **self._connect_options(),
            tcp_user_timeout=max(1000, round(1000 * self.options.timeout_s)),
        )
        self._checker.execute("SELECT 1")  # failing, the connection is replaced next time
        return lost

    def _reconnect(self) -> None:
        """A fresh pool, at once: psycopg_pool reconnects a lost connection after a delay that
        doubles with every failed attempt (18–20 s after a 40 s outage), and may still hold
        connections the restart broke. The listener reconnects on its next wait."""
        stale, self._pool = self._pool, self._open_pool()
        self._pools_opened += 1
        stale.close(timeout=1.0)

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
