"""The gallery: a store (SQLite, or PostgreSQL for replicas) is the source of truth, FAISS
serves search (``index``). ``open_store`` picks the store's backend from where it is; the base
module (``store``) knows none of its backends."""

from __future__ import annotations

from pathlib import Path

from service.gallery.availability import StoreOptions
from service.gallery.store import GalleryStore


def open_store(target: str | Path, options: StoreOptions | None = None) -> GalleryStore:
    """The store at ``target``: a ``postgresql://`` URL, or the path of a SQLite file."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from service.gallery.postgres import PostgresStore  # needs the postgres extra

        return PostgresStore(target, options)
    from service.gallery.sqlite import SqliteStore

    return SqliteStore(Path(target), options)
