"""The gallery store: subjects, their samples, and the samples' embeddings — the source of truth.

One interface, ``GalleryStore``, written once in the SQL both backends speak; a backend supplies
its connection, its transactions and its schema:

- ``SqliteStore`` (``service.gallery.sqlite``): the embedded default, one file in the data dir;
- ``PostgresStore`` (``service.gallery.postgres``): a server that many replicas share.

``open_store(target)`` picks one: a ``postgresql://`` URL, or a path to a SQLite file. Every
write is one transaction, committed before the call returns: an acknowledged write is durable.

Every use of the store goes through ``_write`` or ``_read``, which bound it and turn the
driver's errors that mean "cannot be used now" (a server away, a file locked or full) into one
domain error, ``StoreUnavailableError`` (503); any other error is a bug and passes as it is. A
background check keeps ``status`` current (``service.gallery.availability``).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

from service.gallery.availability import StoreOptions, StoreStatus, StoreWatch
from service.gallery.records import (
    ACTIVE_MODEL_KEY,
    Change,
    EmbeddingSet,
    InvalidMetadataError,
    NewSample,
    Sample,
    SampleNotFoundError,
    StaleModelError,
    StoreUnavailableError,
    StoreVersionError,
    Subject,
    SubjectNotFoundError,
    check_silhouettes,
    check_text,
    encode_metadata,
    pack_silhouettes,
    unpack_silhouettes,
)

__all__ = [
    "Change",
    "EmbeddingSet",
    "GalleryStore",
    "InvalidMetadataError",
    "NewSample",
    "Sample",
    "SampleNotFoundError",
    "StaleModelError",
    "StoreOptions",
    "StoreUnavailableError",
    "StoreVersionError",
    "Subject",
    "SubjectNotFoundError",
    "check_text",
    "encode_metadata",
]

log = logging.getLogger("gaitlab.store")

SAMPLE_COLUMNS = "id, subject_id, created_at, frames, condition, view, metadata"


def _sample(row: tuple) -> Sample:
    return Sample(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'``, with the text's own wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class GalleryStore(ABC):
    """Thread-safe access to one gallery. SQL here uses ``?`` placeholders; a backend adapts."""

    description: str  # where the gallery is, for logs and messages
    change_retention_s: float = 7 * 24 * 3600.0
    """How long the change log keeps a change. Replicas follow the log within seconds; one that
    falls further behind rebuilds its index from the store. The newest change is always kept."""
    prune_every_s: float = 60.0  # the log is pruned by a write at most this often
    _pruned_at: float = 0.0
    fails_fast: bool = False
    """While the store is known to be down, refuse at once instead of trying (a server that can
    go away, where trying means waiting); a backend whose failures are immediate tries."""

    def __init__(self, options: StoreOptions | None = None):
        """A backend calls this first, and ``self._watch.start()`` once the store is open."""
        self.options = options or StoreOptions()
        self.status = StoreStatus(self.options)
        self._watch = StoreWatch(self.check, self.options.check_s)

    # --- what a backend supplies
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A transaction: yields an object with ``execute(sql, params) -> cursor``; commits on
        success (durably, before returning), rolls back on error."""

    @abstractmethod
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of one query, outside any write transaction."""

    @abstractmethod
    def _after_delete(self) -> None:
        """What makes deleted rows gone from the files (a backend's erasure step)."""

    @abstractmethod
    def _unavailable(self, error: Exception) -> tuple[str, bool] | None:
        """If the driver's ``error`` means the store cannot be used now: what to tell the
        client, and whether the whole store is down (not just this operation refused). None
        for any other error: a bug, raised as it is."""

    @abstractmethod
    def _check(self) -> bool:
        """Reach the store outside the request path, raising the driver's error if it cannot;
        True if it has restarted since the last check (connections made before are lost)."""

    @abstractmethod
    def _reconnect(self) -> None:
        """The store answers again after an outage: replace connections made before it."""

    @abstractmethod
    def _close(self) -> None: ...

    def close(self) -> None:
        self._watch.stop()
        self._close()

    # --- availability
    @contextmanager
    def _access(self) -> Iterator[None]:
        """One use of the store: refused at once while it is known to be down (``fails_fast``);
        the driver's "unavailable" errors raised as ``StoreUnavailableError``, and a store
        found down marked so (and checked at once)."""
        self.refuse_if_down()
        try:
            yield
        except Exception as error:
            found = self._unavailable(error)
            if found is None:
                raise
            reason, down = found
            if down and self.fails_fast:
                self.status.mark_down(reason)
                self._watch.wake()
            wait = self.options.retry_after_s
            raise StoreUnavailableError(
                f"{self.status.name} is unavailable ({reason}); retry after {wait} s", wait
            ) from error

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A transaction (``_transaction``) through ``_access``."""
        with self._access(), self._transaction() as db:
            yield db

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of one query (``_query``) through ``_access``."""
        with self._access():
            return self._query(sql, params)

    def refuse_if_down(self) -> None:
        """``StoreUnavailableError`` now if the store fails fast and is known to be down (so a
        caller spends nothing on work the store would refuse)."""
        if self.fails_fast:
            self.status.refuse_if_down()

    def check(self) -> None:
        """Reach the store now and record what was found (the background check; never raises).
        A store found again after an outage, or restarted, reconnects afresh first."""
        try:
            restarted = self._check()
            if restarted or self.status.down:
                self._reconnect()
        except Exception as error:
            self.status.mark_down(self._reason(error))
        else:
            self.status.mark_up()

    def _reason(self, error: Exception) -> str:
        if isinstance(error, StoreUnavailableError):
            return error.detail
        found = self._unavailable(error)
        if found is None:
            log.exception("the store check failed")
            return f"its check failed: {type(error).__name__}"
        return found[0]

    def _erase(self) -> None:
        """The backend's erasure step after a committed delete. A failure is logged, not raised:
        the delete is committed, so it is answered (and applied to the index); the next
        delete's step reaches this one's rows too."""
        try:
            with self._access():
                self._after_delete()
        except StoreUnavailableError as error:
            log.error("the erasure step after a delete failed", extra={"error": error.detail})

    def wait_for_change(self, timeout: float) -> None:
        """Return when a change may have been logged, or after ``timeout`` seconds (a backend
        that can be told, such as PostgreSQL's LISTEN/NOTIFY, returns sooner)."""
        time.sleep(timeout)

    def _log(self, db: Any, kind: str, sample_ids: list[int], model_version: str | None) -> None:
        """Append to the change log, inside the write's own transaction; now and then, drop
        changes older than ``change_retention_s`` (all but the newest)."""
        now = time.time()
        db.execute(
            "INSERT INTO changes (kind, sample_ids, model_version, at) VALUES (?, ?, ?, ?)",
            (kind, json.dumps([int(i) for i in sample_ids]), model_version, now),
        )
        if now - self._pruned_at >= self.prune_every_s:
            self._pruned_at = now
            db.execute(
                "DELETE FROM changes WHERE at < ? AND id < (SELECT MAX(id) FROM changes)",
                (now - self.change_retention_s,),
            )

    @property
    @abstractmethod
    def schema_version(self) -> int: ...

    # --- writes
    def add_sample(
        self,
        subject_id: str,
        silhouettes: np.ndarray,
        vector: np.ndarray,
        model_version: str,
        condition: str | None = None,
        view: str | None = None,
        metadata: dict | None = None,
    ) -> Sample:
        """Store one enrolled clip (creating its subject) with its embedding; durable on return.

        silhouettes: uint8 [T, 64, 44]; vector: float32 [d] (part-normalised embedding).
        """
        new = NewSample(subject_id, silhouettes, vector, condition, view, metadata or {})
        return self.add_samples([new], model_version)[0]

    def add_samples(
        self, new: list[NewSample], model_version: str, require_active: bool = False
    ) -> list[Sample]:
        """Store several enrolled clips in one transaction: all of them or, on error, none.

        ``require_active``: refuse (``StaleModelError``) unless ``model_version`` is the active
        model recorded in the store, checked inside the transaction — so no enrollment embedded
        by a model another replica has just replaced can slip in after the activation."""
        encoded = []
        for item in new:  # everything is checked before the transaction starts
            check_silhouettes(item.silhouettes)
            check_text(item.condition, "condition")
            check_text(item.view, "view")
            encoded.append(encode_metadata(item.metadata))
        now = time.time()
        stored = []
        with self._write() as db:
            if require_active:
                active = _active_version(db)
                if active is not None and active != model_version:
                    raise StaleModelError(
                        f"the active model is now {active}, not {model_version}; retry"
                    )
            for item, metadata in zip(new, encoded, strict=True):
                db.execute(
                    "INSERT INTO subjects (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (item.subject_id, now),
                )
                frames = len(item.silhouettes)
                sample_id = db.execute(
                    "INSERT INTO samples (subject_id, created_at, condition, view, metadata,"
                    " frames, silhouettes) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        item.subject_id,
                        now,
                        item.condition,
                        item.view,
                        metadata,
                        frames,
                        pack_silhouettes(item.silhouettes),
                    ),
                ).fetchone()[0]
                _insert_embedding(db, sample_id, model_version, item.vector)
                stored.append(
                    Sample(
                        int(sample_id),  # logged below, with the rest of this transaction
                        item.subject_id,
                        now,
                        frames,
                        item.condition,
                        item.view,
                        item.metadata,
                    )
                )
            self._log(db, "enroll", [s.id for s in stored], model_version)
        return stored

    def delete_subject(self, subject_id: str) -> list[int]:
        """Remove a subject, its samples and embeddings; returns the removed sample ids."""
        with self._write() as db:
            rows = db.execute("SELECT id FROM samples WHERE subject_id = ?", (subject_id,))
            ids = [int(r[0]) for r in rows.fetchall()]
            if db.execute("DELETE FROM subjects WHERE id = ?", (subject_id,)).rowcount == 0:
                raise SubjectNotFoundError.of(subject_id)
            self._log(db, "delete", ids, None)
        self._erase()
        return ids

    def delete_sample(self, subject_id: str, sample_id: int) -> None:
        """Remove one sample (and its embeddings); the subject stays, possibly with none."""
        with self._write() as db:
            deleted = db.execute(
                "DELETE FROM samples WHERE id = ? AND subject_id = ?", (sample_id, subject_id)
            ).rowcount
            if deleted == 0:
                raise SampleNotFoundError(f"no sample {sample_id} of subject {subject_id!r}")
            self._log(db, "delete", [sample_id], None)
        self._erase()

    def put_embedding(self, sample_id: int, model_version: str, vector: np.ndarray) -> None:
        """Store (or replace) one sample's embedding from ``model_version``."""
        self.put_embeddings([sample_id], model_version, np.asarray(vector)[None])

    def put_embeddings(
        self, sample_ids: list[int], model_version: str, vectors: np.ndarray
    ) -> None:
        """Store (or replace) embeddings float32 [n, d] of ``sample_ids`` in one transaction.
        Samples deleted in the meantime are skipped."""
        with self._write() as db:
            for sample_id, vector in zip(sample_ids, vectors, strict=True):
                db.execute(
                    "INSERT INTO embeddings (sample_id, model_version, vector)"
                    " SELECT id, ?, ? FROM samples WHERE id = ?"
                    " ON CONFLICT (sample_id, model_version)"
                    " DO UPDATE SET vector = excluded.vector",
                    (model_version, np.asarray(vector, np.float32).tobytes(), int(sample_id)),
                )

    def drop_embeddings_of(self, model_version: str) -> int:
        """Delete every embedding made by ``model_version``; returns how many."""
        with self._write() as db:
            sql = "DELETE FROM embeddings WHERE model_version = ?"
            return db.execute(sql, (model_version,)).rowcount

    def drop_embeddings_except(self, model_version: str) -> int:
        """Delete the embeddings of every other model version; returns how many."""
        with self._write() as db:
            sql = "DELETE FROM embeddings WHERE model_version <> ?"
            return db.execute(sql, (model_version,)).rowcount

    def set_state(self, key: str, value: str) -> None:
        """Keep a value across restarts (such as the active model)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO service_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def activate_model(
        self, version: str, path: str, embed: Callable[[list[np.ndarray]], np.ndarray]
    ) -> int:
        """Make ``version`` the active model, in one transaction under the store's write lock:
        first the samples still without its embedding (enrolled during the refresh, perhaps on
        another replica) are embedded with ``embed`` (clips → float32 [n, d]), then the active
        model is recorded and the change logged. Returns how many samples were caught up."""
        with self._write() as db:
            rows = db.execute(
                "SELECT id, frames, silhouettes FROM samples WHERE id NOT IN"
                " (SELECT sample_id FROM embeddings WHERE model_version = ?) ORDER BY id",
                (version,),
            ).fetchall()
            if rows:
                vectors = embed([unpack_silhouettes(bytes(r[2]), r[1]) for r in rows])
                for row, vector in zip(rows, vectors, strict=True):
                    _insert_embedding(db, row[0], version, vector)
            record = json.dumps({"version": version, "path": path})
            db.execute(
                "INSERT INTO service_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (ACTIVE_MODEL_KEY, record),
            )
            self._log(db, "activate", [], version)
        return len(rows)

    def put_model(self, version: str, data: bytes) -> None:
        """Keep a model file in the store, so that every replica can load it."""
        with self._write() as db:
            db.execute(
                "INSERT INTO models (version, onnx, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (version) DO NOTHING",
                (version, data, time.time()),
            )

    def has_model(self, version: str) -> bool:
        return bool(self._read("SELECT 1 FROM models WHERE version = ?", (version,)))

    def get_model(self, version: str) -> bytes | None:
        rows = self._read("SELECT onnx FROM models WHERE version = ?", (version,))
        return bytes(rows[0][0]) if rows else None

    @abstractmethod
    def try_refresh_lock(self) -> bool:
        """Only one model refresh at a time on one gallery: ``True`` if this process may."""

    @abstractmethod
    def release_refresh_lock(self) -> None:
        """Let another refresh start."""

    # --- reads
    def active_model_version(self) -> str | None:
        text = self.get_state(ACTIVE_MODEL_KEY)
        return json.loads(text)["version"] if text else None

    def get_state(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM service_state WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def get_subject(self, subject_id: str) -> Subject:
        sql = "SELECT id, created_at, metadata FROM subjects WHERE id = ?"
        rows = self._read(sql, (subject_id,))
        if not rows:
            raise SubjectNotFoundError.of(subject_id)
        samples = self._read(
            f"SELECT {SAMPLE_COLUMNS} FROM samples WHERE subject_id = ? ORDER BY id",
            (subject_id,),
        )
        row = rows[0]
        return Subject(row[0], row[1], json.loads(row[2]), [_sample(r) for r in samples])

    def list_subjects(
        self, offset: int = 0, limit: int = 100, contains: str = ""
    ) -> tuple[list[tuple[str, int]], int]:
        """Subject ids (those containing ``contains``, case-insensitive for ASCII) with their
        sample counts, in id order, and how many subjects match in all."""
        pattern = like_pattern(contains.lower())
        where = "WHERE LOWER(id) LIKE ? ESCAPE '\\'"
        total = self._read(f"SELECT COUNT(*) FROM subjects {where}", (pattern,))[0][0]
        rows = self._read(
            "SELECT s.id, COUNT(m.id) FROM subjects s LEFT JOIN samples m ON m.subject_id = s.id"
            " WHERE LOWER(s.id) LIKE ? ESCAPE '\\' GROUP BY s.id ORDER BY s.id LIMIT ? OFFSET ?",
            (pattern, limit, offset),
        )
        return [(r[0], int(r[1])) for r in rows], int(total)

    def silhouettes(self, sample_id: int) -> np.ndarray:
        """The stored clip of a sample: uint8 [T, 64, 44]."""
        rows = self._read("SELECT silhouettes, frames FROM samples WHERE id = ?", (sample_id,))
        if not rows:
            raise SampleNotFoundError(f"no sample {sample_id} in the gallery")
        return unpack_silhouettes(bytes(rows[0][0]), rows[0][1])

    def has_sample(self, sample_id: int) -> bool:
        return bool(self._read("SELECT 1 FROM samples WHERE id = ?", (sample_id,)))

    def sample_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM samples")[0][0])

    def samples_missing(self, model_version: str) -> list[int]:
        """Ids of samples with no embedding from ``model_version`` (to be re-embedded)."""
        rows = self._read(
            "SELECT id FROM samples WHERE id NOT IN"
            " (SELECT sample_id FROM embeddings WHERE model_version = ?) ORDER BY id",
            (model_version,),
        )
        return [int(r[0]) for r in rows]

    def embeddings(self, model_version: str) -> EmbeddingSet:
        """Every stored embedding made by ``model_version``, in sample id order."""
        rows = self._read(
            "SELECT e.sample_id, s.subject_id, e.vector FROM embeddings e JOIN samples s"
            " ON s.id = e.sample_id WHERE e.model_version = ? ORDER BY e.sample_id",
            (model_version,),
        )
        return _embedding_set(rows)

    def sample_views(
        self, sample_ids: list[int] | None = None
    ) -> list[tuple[int, str, str | None]]:
        """(sample id, subject id, view) of every sample, or of these (those still stored): what
        the identification decision counts a subject's views from."""
        if sample_ids is None:
            rows = self._read("SELECT id, subject_id, view FROM samples ORDER BY id")
        elif not sample_ids:
            return []
        else:
            marks = ", ".join("?" * len(sample_ids))
            rows = self._read(
                f"SELECT id, subject_id, view FROM samples WHERE id IN ({marks}) ORDER BY id",
                tuple(map(int, sample_ids)),
            )
        return [(int(r[0]), r[1], r[2]) for r in rows]

    def change_position(self) -> int:
        """The id of the last change logged (0 when none)."""
        return int(self._read("SELECT COALESCE(MAX(id), 0) FROM changes")[0][0])

    def first_change_position(self) -> int:
        """The id of the oldest change still logged (0 when none): a follower at a position
        below it minus one may have missed pruned changes."""
        return int(self._read("SELECT COALESCE(MIN(id), 0) FROM changes")[0][0])

    def changes_since(self, position: int, limit: int = 1000) -> list[Change]:
        """Changes logged after ``position``, oldest first (at most ``limit``)."""
        rows = self._read(
            "SELECT id, kind, sample_ids, model_version, at FROM changes WHERE id > ?"
            " ORDER BY id LIMIT ?",
            (position, limit),
        )
        return [Change(int(r[0]), r[1], json.loads(r[2]), r[3], float(r[4])) for r in rows]

    def embeddings_of(self, sample_ids: list[int], model_version: str) -> EmbeddingSet:
        """The embeddings by ``model_version`` of these samples (those still stored)."""
        if not sample_ids:
            return EmbeddingSet(np.empty(0, np.int64), [], np.empty((0, 0), np.float32))
        marks = ", ".join("?" * len(sample_ids))
        rows = self._read(
            "SELECT e.sample_id, s.subject_id, e.vector FROM embeddings e JOIN samples s"
            f" ON s.id = e.sample_id WHERE e.model_version = ? AND e.sample_id IN ({marks})"
            " ORDER BY e.sample_id",
            (model_version, *map(int, sample_ids)),
        )
        return _embedding_set(rows)

    def ping(self) -> bool:
        """The database answers a query (for readiness)."""
        try:
            return self._read("SELECT 1") == [(1,)]
        except Exception:  # any driver error means: not ready
            return False


def _insert_embedding(db: Any, sample_id: int, version: str, vector: np.ndarray) -> None:
    db.execute(
        "INSERT INTO embeddings (sample_id, model_version, vector) VALUES (?, ?, ?)",
        (int(sample_id), version, np.asarray(vector, np.float32).tobytes()),
    )


def _active_version(db: Any) -> str | None:
    row = db.execute(
        "SELECT value FROM service_state WHERE key = ?", (ACTIVE_MODEL_KEY,)
    ).fetchone()
    return json.loads(row[0])["version"] if row else None


def _embedding_set(rows: list[tuple]) -> EmbeddingSet:
    """Rows of (sample id, subject id, vector bytes) as an ``EmbeddingSet``."""
    if not rows:
        return EmbeddingSet(np.empty(0, np.int64), [], np.empty((0, 0), np.float32))
    vectors = np.stack([np.frombuffer(bytes(r[2]), dtype=np.float32) for r in rows])
    return EmbeddingSet(np.array([r[0] for r in rows], np.int64), [r[1] for r in rows], vectors)
