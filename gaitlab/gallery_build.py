"""``gaitlab gallery build``: enroll a CASIA-B partition in bulk.

It sits in the ``gaitlab`` package because it joins both sides: CASIA-B reading (``training.data``,
numpy only) and the gallery (``service``). Subject ids are the CASIA-B ids; each sample records
its condition and view.

- ``--data-dir DIR``: straight into the store of a service that is not running (batched
  embedding with the same engine and normalisation the service uses);
- ``--url URL``: through a running service's API (``POST /gallery/samples``, ``.npy`` clips in
  bulk requests).

Sequences shorter than ``--min-frames`` (the service's minimum, 5) are left out and counted.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.batching import equal_length_batches
from models.proof import open_proven
from models.scoring import part_normalise
from training.data.cache import SilhouetteCache

MIN_FRAMES = 5
"""Sequences shorter than this are left out (and counted): the service refuses them."""


@dataclass
class BuildReport:
    sequences: int  # enrolled
    subjects: int
    skipped: int  # too short, empty or unreadable
    model_version: str | None = None  # the model that embedded them (into a store)
    fallback: str | None = None  # why the model asked for was refused here (models.proof)


def _load(
    tree: Path, subjects: list[str], conditions: list[str], min_frames: int
) -> SilhouetteCache:
    cache = SilhouetteCache.load(tree, subjects, conditions, min_frames, progress=True)
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
    min_frames: int = MIN_FRAMES,
) -> BuildReport:
    from service.gallery import open_store

    serving = open_proven(model)  # what the service would serve from this model, on this CPU
    engine = serving.engine
    cache = _load(tree, subjects, conditions, min_frames)
    store = open_store(Path(data_dir) / "gallery.db")
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
    return BuildReport(
        len(cache),
        len(set(cache.subjects)),
        len(cache.skipped),
        engine.version,
        serving.fallback_reason,
    )


def build_through_api(
    tree: Path,
    subjects: list[str],
    conditions: list[str],
    url: str,
    timeout: float = 120.0,
    clips_per_request: int = 32,
    min_frames: int = MIN_FRAMES,
    api_key: str | None = None,
) -> BuildReport:
    """Enroll through ``POST /gallery/samples``, ``clips_per_request`` ``.npy`` clips at a time,
    with ``api_key`` (an admin key) when the service has keys."""
    import httpx

    cache = _load(tree, subjects, conditions, min_frames)
    bar = tqdm(total=len(cache), desc="enrolling", unit="seq")
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=url, timeout=timeout, headers=headers) as client:
        for first in range(0, len(cache), clips_per_request):
            chunk = range(first, min(first + clips_per_request, len(cache)))
            files, manifest = [], []
            for index in chunk:
                key = cache.keys[index]
                buffer = io.BytesIO()
                np.save(buffer, cache.sequence(index))
                files.append(
                    ("clips", (f"{key}.npy", buffer.getvalue(), "application/octet-stream"))
                )
                manifest.append(
                    {"subject_id": key.subject, "condition": key.condition, "view": key.view}
                )
            answer = client.post(
                "/gallery/samples", files=files, data={"manifest": json.dumps(manifest)}
            )
            if answer.status_code != 201:
                raise RuntimeError(
                    f"the batch from {cache.keys[first]} was refused"
                    f" ({answer.status_code}): {answer.text}"
                )
            bar.update(len(chunk))
    bar.close()
    return BuildReport(len(cache), len(set(cache.subjects)), len(cache.skipped))
