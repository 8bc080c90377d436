"""``gaitlab gallery build``: enroll a CASIA-B partition in bulk.

It sits in the ``gaitlab`` package because it joins both sides: CASIA-B reading (``training.data``,
numpy only) and the gallery (``service``). Subject ids are the CASIA-B ids; each sample records
its condition and view.

- ``--data-dir DIR``: straight into the store of a service that is not running (batched
  embedding with the same engine and normalisation the service uses);
- ``--url URL``: through a running service's API, one ``.npy`` upload per sequence.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.batching import equal_length_batches
from models.engine import EmbeddingEngine
from models.scoring import part_normalise
from training.data.cache import SilhouetteCache


@dataclass
class BuildReport:
    sequences: int
    subjects: int
    skipped: int


def _load(tree: Path, subjects: list[str], conditions: list[str]) -> SilhouetteCache:
    cache = SilhouetteCache.load(tree, subjects, conditions, progress=True)
    if len(cache) == 0:
        raise ValueError(f"no sequences for those subjects and conditions under {tree}")
    return cache


def build_into_store(
    tree: Path,
    subjects: list[str],
    conditions: list[str],
    data_dir: Path,
    model: Path,
    batch_size: int = 16,
) -> BuildReport:
    from service.gallery.store import GalleryStore

    cache = _load(tree, subjects, conditions)
    engine = EmbeddingEngine(model)
    store = GalleryStore(Path(data_dir) / "gallery.db")
    try:
        bar = tqdm(total=len(cache), desc="enrolling", unit="seq")
        for chunk in equal_length_batches(cache.lengths, batch_size):
            clips = np.stack([cache.sequence(i) for i in chunk])  # [b, T, 64, 44]
            vectors = part_normalise(engine.embed(clips))
            for index, vector in zip(chunk, vectors, strict=True):
                key = cache.keys[index]
                store.add_sample(
                    key.subject,
                    cache.sequence(index),
                    vector,
                    engine.version,
                    condition=key.condition,
                    view=key.view,
                )
            bar.update(len(chunk))
        bar.close()
    finally:
        store.close()
    return BuildReport(len(cache), len(set(cache.subjects)), len(cache.skipped))


def build_through_api(
    tree: Path, subjects: list[str], conditions: list[str], url: str, timeout: float = 60.0
) -> BuildReport:
    import httpx

    cache = _load(tree, subjects, conditions)
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for index in tqdm(range(len(cache)), desc="enrolling", unit="seq"):
            key = cache.keys[index]
            buffer = io.BytesIO()
            np.save(buffer, cache.sequence(index))
            answer = client.post(
                f"/gallery/subjects/{key.subject}/samples",
                files={"clip": (f"{key}.npy", buffer.getvalue(), "application/octet-stream")},
                data={"condition": key.condition, "view": key.view},
            )
            if answer.status_code != 201:
                raise RuntimeError(
                    f"{key}: the service answered {answer.status_code}: {answer.text}"
                )
    return BuildReport(len(cache), len(set(cache.subjects)), len(cache.skipped))
