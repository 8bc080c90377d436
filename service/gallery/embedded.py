"""A gallery's embeddings by one model: made for stored samples that lack them, and searched
(the index built from them). Plain functions of the engine and the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.engine import EmbeddingEngine
from models.scoring import part_normalise
from service.gallery.index import GalleryIndex, IndexPolicy
from service.gallery.store import GalleryStore, SampleNotFoundError


def embed_stored(
    engine: EmbeddingEngine,
    store: GalleryStore,
    sample_ids: list[int],
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Embed stored samples with ``engine`` and store the embeddings, ``batch_size`` at a time
    (one transaction each); ``progress`` gets the number done after every batch."""
    for first in range(0, len(sample_ids), batch_size):
        chunk = sample_ids[first : first + batch_size]
        found = []
        for sample_id in chunk:
            try:
                found.append((sample_id, store.silhouettes(sample_id)))
            except SampleNotFoundError:  # deleted meanwhile
                continue
        if found:
            vectors = part_normalise(engine.embed_many([clip for _, clip in found]))
            store.put_embeddings([i for i, _ in found], engine.version, vectors)
        if progress:
            progress(len(chunk))


def build_index(
    engine: EmbeddingEngine,
    store: GalleryStore,
    policy: IndexPolicy | None = None,
    centroids_dir: Path | None = None,
) -> GalleryIndex:
    """The index of ``engine``'s stored embeddings (which must be complete)."""
    found = store.embeddings(engine.version)
    index = GalleryIndex(
        embedding_dim(engine), engine.version, engine.device, policy, centroids_dir
    )
    if len(found.sample_ids):
        index.add(found.sample_ids, found.subject_ids, found.vectors)
    return index


def embedding_dim(engine: EmbeddingEngine) -> int:
    probe = engine.embed(np.zeros((1, 1, 64, 44), np.uint8))  # [1, c, p]
    return int(np.prod(probe.shape[1:]))
