"""The approximate index in a real server (uvicorn, SQLite, the toy ONNX model): a gallery past
the policy's mark is searched by IVF, ``exact=true`` still searches every sample, and it
keeps its trained centroids for the next start."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest

from models.engine import EmbeddingEngine
from models.scoring import part_normalise
from service.gallery import open_store
from service.recognition import Enrollment, Recognizer
from tests.helpers import toy_model
from tests.service.live_server import Server

SAMPLES = 2400


def npy(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, clip)
    return buffer.getvalue()


def random_clip(rng: np.random.Generator) -> np.ndarray:
    """5 frames [64, 44] of random 0/255 pixels: a different embedding every time."""
    return np.where(rng.random((5, 64, 44)) < 0.4, 255, 0).astype(np.uint8)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A data folder whose store holds SAMPLES samples of SAMPLES // 4 subjects."""
    folder = tmp_path_factory.mktemp("search")
    model = toy_model(folder / "toy.onnx", threshold=0.99)
    store = open_store(folder / "data" / "gallery.db")
    recognizer = Recognizer.open(EmbeddingEngine(model, device="cpu"), store)
    rng = np.random.default_rng(0)
    for first in range(0, SAMPLES, 200):
        recognizer.enroll_many(
            [Enrollment(f"s{n // 4}", npy(random_clip(rng))) for n in range(first, first + 200)]
        )
    recognizer.close()
    found = store.embeddings("toy-1")
    store.close()
    return folder, model, found


def brute_force(found, query: np.ndarray, top_k: int) -> list[str]:
    scores = found.vectors @ query
    best: dict[str, float] = {}
    for subject, score in zip(found.subject_ids, scores, strict=True):
        best[subject] = max(best.get(subject, -np.inf), float(score))
    return sorted(best, key=best.get, reverse=True)[:top_k]


def test_a_large_gallery_is_searched_approximately_and_exactly_on_request(gallery):
    folder, model, found = gallery
    env = {"GAITLAB_INDEX": "approximate", "GAITLAB_NPROBE": "2"}
    server = Server(model, folder / "data", env=env).start()
    try:
        client = httpx.Client(base_url=server.url, timeout=60)
        state = client.get("/model").json()
        assert state["index"] == "approximate"
        assert state["gallery_samples"] == SAMPLES
        assert state["index_lists"] > 2
        rng = np.random.default_rng(1)
        engine = EmbeddingEngine(model, device="cpu")
        approximate_differed = 0
        for _ in range(10):
            clip = random_clip(rng)
            truth = brute_force(found, part_normalise(engine.embed(clip[None]))[0], 3)
            answers = {}
            for exact in ("true", "false"):
                files = {"clip": ("c.npy", npy(clip), "application/octet-stream")}
                params = {"top_k": 3, "threshold": -1.0, "exact": exact}
                hits = client.post("/identify", files=files, params=params).json()["hits"]
                answers[exact] = [h["subject_id"] for h in hits]
            assert answers["true"] == truth
            approximate_differed += answers["false"] != truth
        # 2 lists of many read: random (unclustered) vectors are often missed
        assert approximate_differed > 0
        kept = list((folder / "data" / "index").glob("*.ivf"))
        assert len(kept) == 1  # the trained centroids, for the next start
    finally:
        server.stop()
