"""The gallery store (SQLite, WAL): subjects, their samples, and the samples' embeddings.

It is the source of truth. Each sample keeps its normalised silhouettes (``uint8 [T, 64, 44]``,
zlib-compressed raw bytes, never pickled) so the gallery can be re-embedded by a later model;
each embedding records the model version that made it. Writes are single transactions with
``synchronous=FULL``: when a call returns, the write is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.contract import FRAME_HEIGHT, MODEL_WIDTH
from service.errors import NotFoundError, ServiceError

SCHEMA_VERSION = 1
"""The gallery schema this release writes (``PRAGMA user_version``). A store at an older version
is migrated forward when opened; one at a newer version is refused."""

MIGRATIONS: dict[int, str] = {}
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


class SubjectNotFoundError(NotFoundError):
    code = "subject_not_found"

    @classmethod
    def of(cls, subject_id: str) -> SubjectNotFoundError:
        return cls(f"no subject {subject_id!r} in the gallery")


class SampleNotFoundError(NotFoundError):
    code = "sample_not_found"


class StoreVersionError(RuntimeError):
    """The store was written by a newer GaitLab than this one."""


class InvalidMetadataError(ServiceError):
    code = "bad_metadata"


MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 8
MAX_TEXT_CHARS = 64


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def encode_metadata(metadata: object) -> str:
    """A sample's metadata as the JSON text stored and served back, or ``InvalidMetadataError``:
    a JSON object, nested at most 8 deep, at most 4 KiB of UTF-8, finite numbers, no lone
    surrogates. Checked before anything is stored, so what is stored can always be read."""
    if not isinstance(metadata, dict):
        raise InvalidMetadataError("metadata must be a JSON object")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise InvalidMetadataError(f"metadata is nested more than {MAX_METADATA_DEPTH} deep")
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as error:  # NaN/inf, non-JSON values, lone surrogates
        raise InvalidMetadataError(f"metadata cannot be stored as JSON: {error}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(f"metadata is {size} bytes; at most {MAX_METADATA_BYTES}")
    return text


def check_text(value: str | None, field: str) -> str | None:
    """A short label (condition, view) that stores and serves back as UTF-8."""
    if value is None:
        return None
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidMetadataError(f"{field} is longer than {MAX_TEXT_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMetadataError(f"{field} is not valid text (a lone surrogate)") from None
    return value


@dataclass(frozen=True)
class Sample:
    id: int
    subject_id: str
    created_at: float
    frames: int
    condition: str | None = None
    view: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NewSample:
    """A clip to enroll: silhouettes uint8 [T, 64, 44] and its embedding float32 [d]."""

    subject_id: str
    silhouettes: np.ndarray
    vector: np.ndarray
    condition: str | None = None
    view: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    id: str
    created_at: float
    metadata: dict
    samples: list[Sample]


@dataclass(frozen=True)
class EmbeddingSet:
    """Every embedding of one model version: sample ids int64 [n], subject ids, float32 [n, d]."""

    sample_ids: np.ndarray
    subject_ids: list[str]
    vectors: np.ndarray


def _pack(silhouettes: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(silhouettes, dtype=np.uint8).tobytes(), level=6)


def _unpack(blob: bytes, frames: int) -> np.ndarray:
    flat = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
    return flat.reshape(frames, FRAME_HEIGHT, MODEL_WIDTH)


class GalleryStore:
    """Thread-safe access to one SQLite gallery file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
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
        """Bring the store to ``SCHEMA_VERSION``, one version at a time, each step atomic."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path} holds gallery schema {version}, written by a newer GaitLab; this "
                f"release reads up to schema {SCHEMA_VERSION}: upgrade, or use another data dir"
            )
        with self._lock:
            if version < 1:  # a new store, or one from before versioning (same tables)
                self._db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;")
                version = 1
            for target in range(version + 1, SCHEMA_VERSION + 1):
                self._db.executescript(
                    f"BEGIN; {MIGRATIONS[target]} PRAGMA user_version = {target}; COMMIT;"
                )

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self):
        return _Transaction(self._db, self._lock)

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

    def add_samples(self, new: list[NewSample], model_version: str) -> list[Sample]:
        """Store several enrolled clips in one transaction: all of them or, on error, none."""
        encoded = []
        for item in new:  # everything is checked before the transaction starts
            shape = item.silhouettes.shape
            if len(shape) != 3 or shape[1:] != (FRAME_HEIGHT, MODEL_WIDTH):
                raise ValueError(f"silhouettes must be [T, 64, 44]; got {shape}")
            check_text(item.condition, "condition")
            check_text(item.view, "view")
            encoded.append(encode_metadata(item.metadata))
        now = time.time()
        stored = []
        with self._transaction() as db:
            for item, metadata in zip(new, encoded, strict=True):
                db.execute(
                    "INSERT OR IGNORE INTO subjects (id, created_at) VALUES (?, ?)",
                    (item.subject_id, now),
                )
                cursor = db.execute(
                    "INSERT INTO samples (subject_id, created_at, condition, view, metadata,"
                    " frames, silhouettes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.subject_id,
                        now,
                        item.condition,
                        item.view,
                        metadata,
                        len(item.silhouettes),
                        _pack(item.silhouettes),
                    ),
                )
                sample_id = int(cursor.lastrowid)
                db.execute(
                    "INSERT INTO embeddings (sample_id, model_version, vector) VALUES (?, ?, ?)",
                    (sample_id, model_version, np.asarray(item.vector, np.float32).tobytes()),
                )
                stored.append(
                    Sample(
                        sample_id,
                        item.subject_id,
                        now,
                        len(item.silhouettes),
                        item.condition,
                        item.view,
                        item.metadata,
                    )
                )
        return stored

    def _samples_of(self, subject_id: str) -> list[Sample]:
        rows = self._db.execute(
            "SELECT id, subject_id, created_at, frames, condition, view, metadata FROM samples"
            " WHERE subject_id = ? ORDER BY id",
            (subject_id,),
        ).fetchall()
        return [Sample(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    def get_subject(self, subject_id: str) -> Subject:
        with self._lock:
            row = self._db.execute(
                "SELECT id, created_at, metadata FROM subjects WHERE id = ?", (subject_id,)
            ).fetchone()
            if row is None:
                raise SubjectNotFoundError.of(subject_id)
            return Subject(row[0], row[1], json.loads(row[2]), self._samples_of(subject_id))

    def list_subjects(
        self, offset: int = 0, limit: int = 100, contains: str = ""
    ) -> tuple[list[tuple[str, int]], int]:
        """Subject ids (those containing ``contains``, case-insensitive) with their sample counts,
        in id order, and how many subjects match in all."""
        pattern = "%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock:
            total = self._db.execute(
                "SELECT COUNT(*) FROM subjects WHERE id LIKE ? ESCAPE '\\'", (pattern,)
            ).fetchone()[0]
            rows = self._db.execute(
                "SELECT s.id, COUNT(m.id) FROM subjects s LEFT JOIN samples m"
                " ON m.subject_id = s.id WHERE s.id LIKE ? ESCAPE '\\'"
                " GROUP BY s.id ORDER BY s.id LIMIT ? OFFSET ?",
                (pattern, limit, offset),
            ).fetchall()
        return [(r[0], r[1]) for r in rows], total

    def delete_subject(self, subject_id: str) -> list[int]:
        """Remove a subject, its samples and embeddings; returns the removed sample ids."""
        with self._transaction() as db:
            ids = [
                r[0]
                for r in db.execute("SELECT id FROM samples WHERE subject_id = ?", (subject_id,))
            ]
            if db.execute("DELETE FROM subjects WHERE id = ?", (subject_id,)).rowcount == 0:
                raise SubjectNotFoundError.of(subject_id)
        self.checkpoint()
        return ids

    def delete_sample(self, subject_id: str, sample_id: int) -> None:
        """Remove one sample (and its embeddings); the subject stays, possibly with none."""
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM samples WHERE id = ? AND subject_id = ?", (sample_id, subject_id)
            ).rowcount
            if deleted == 0:
                raise SampleNotFoundError(f"no sample {sample_id} of subject {subject_id!r}")
        self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it, so deleted rows
        survive in neither (``secure_delete`` zeroes them in the database file)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def silhouettes(self, sample_id: int) -> np.ndarray:
        """The stored clip of a sample: uint8 [T, 64, 44]."""
        with self._lock:
            row = self._db.execute(
                "SELECT silhouettes, frames FROM samples WHERE id = ?", (sample_id,)
            ).fetchone()
        if row is None:
            raise SampleNotFoundError(f"no sample {sample_id} in the gallery")
        return _unpack(row[0], row[1])

    def samples_missing(self, model_version: str) -> list[int]:
        """Ids of samples with no embedding from ``model_version`` (to be re-embedded)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM samples WHERE id NOT IN"
                " (SELECT sample_id FROM embeddings WHERE model_version = ?) ORDER BY id",
                (model_version,),
            ).fetchall()
        return [r[0] for r in rows]

    def put_embedding(self, sample_id: int, model_version: str, vector: np.ndarray) -> None:
        """Store (or replace) one sample's embedding from ``model_version``."""
        self.put_embeddings([sample_id], model_version, np.asarray(vector)[None])

    def put_embeddings(
        self, sample_ids: list[int], model_version: str, vectors: np.ndarray
    ) -> None:
        """Store (or replace) embeddings float32 [n, d] of ``sample_ids`` in one transaction.
        Samples deleted in the meantime are skipped."""
        with self._transaction() as db:
            for sample_id, vector in zip(sample_ids, vectors, strict=True):
                db.execute(
                    "INSERT OR REPLACE INTO embeddings (sample_id, model_version, vector)"
                    " SELECT id, ?, ? FROM samples WHERE id = ?",
                    (model_version, np.asarray(vector, np.float32).tobytes(), int(sample_id)),
                )

    def drop_embeddings_of(self, model_version: str) -> int:
        """Delete every embedding made by ``model_version``; returns how many."""
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM embeddings WHERE model_version = ?", (model_version,)
            ).rowcount

    def drop_embeddings_except(self, model_version: str) -> int:
        """Delete the embeddings of every other model version; returns how many."""
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM embeddings WHERE model_version != ?", (model_version,)
            ).rowcount

    def has_sample(self, sample_id: int) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM samples WHERE id = ?", (sample_id,))
            return found.fetchone() is not None

    def sample_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def ping(self) -> bool:
        """The database answers a query (for readiness)."""
        try:
            with self._lock:
                return self._db.execute("SELECT 1").fetchone() == (1,)
        except sqlite3.Error:
            return False

    def get_state(self, key: str) -> str | None:
        """A value the service keeps across restarts (such as the active model), or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM service_state WHERE key = ?", (key,))
            found = row.fetchone()
        return found[0] if found else None

    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO service_state (key, value) VALUES (?, ?)", (key, value)
            )

    def embeddings(self, model_version: str) -> EmbeddingSet:
        """Every stored embedding made by ``model_version``, in sample id order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.sample_id, s.subject_id, e.vector FROM embeddings e JOIN samples s"
                " ON s.id = e.sample_id WHERE e.model_version = ? ORDER BY e.sample_id",
                (model_version,),
            ).fetchall()
        if not rows:
            return EmbeddingSet(np.empty(0, np.int64), [], np.empty((0, 0), np.float32))
        vectors = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        return EmbeddingSet(np.array([r[0] for r in rows], np.int64), [r[1] for r in rows], vectors)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the store's lock; rolls back on error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, error, traceback) -> None:
        try:
            self.db.execute("ROLLBACK" if kind else "COMMIT")
        finally:
            self.lock.release()
