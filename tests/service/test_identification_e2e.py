"""Identification over HTTP on real people the shipped default never trained on: strangers are
named within the promise, and the service decides exactly as the evaluation code does.

Six subjects of 057–066 are enrolled (nm-01–04, all 11 views) through the API; every walk of the
probe sets (nm-05/06, bg-01/02, cl-01/02) of the six and of four strangers is sent to
``POST /identify``. The same walks are embedded in process with the engine the service serves
and decided by ``training.evaluation.galleries`` with the card's stranger-rate curves.
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest

from gaitlab.gallery_build import build_through_api
from models.default import DEFAULT_MODEL, default_model_path
from models.engine import EmbeddingEngine
from tests.conftest import unpack
from tests.service.live_server import Server
from training.data.cache import SilhouetteCache
from training.evaluation.galleries import view_scores

pytestmark = [
    pytest.mark.casia,
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="this checkout ships no model"),
]
ENROLLED = ("057", "058", "059", "060", "061", "062")
STRANGERS = ("063", "064", "065", "066")
GALLERY = ["nm-01", "nm-02", "nm-03", "nm-04"]
PROBES = ["nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02"]


@pytest.fixture(scope="module")
def held_out(shared_casia_b, tmp_path_factory):
    return unpack(shared_casia_b, tmp_path_factory.mktemp("held-out"), ENROLLED + STRANGERS)


def npy(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, clip)
    return buffer.getvalue()


def test_strangers_named_within_the_promise_and_walkers_as_evaluated(held_out, tmp_path):
    served = default_model_path("auto")  # what the service serves on this machine
    server = Server(None, tmp_path / "data").start(timeout=120)
    try:
        build_through_api(held_out, list(ENROLLED), GALLERY, server.url)
        probes = SilhouetteCache.load(held_out, list(ENROLLED + STRANGERS), PROBES, progress=False)
        client = httpx.Client(base_url=server.url, timeout=60)
        answers = []
        for index in range(len(probes)):
            files = {"clip": ("walk.npy", npy(probes.sequence(index)), "application/x-npy")}
            answer = client.post("/identify", files=files)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
    finally:
        server.stop()

    # the decision the service made: at 1 % FPIR for six subjects at all 11 views
    rule = answers[0]["rule"]
    assert (rule["basis"], rule["fpir"], rule["gallery_subjects"]) == ("fpir", 0.01, 6)
    assert all(a["hits"][0]["views"] == 11 for a in answers)
    named = np.array([a["decision"] is not None for a in answers])
    right = np.array([a["decision"] == s for a, s in zip(answers, probes.subjects, strict=True)])
    stranger = np.isin(probes.subjects, STRANGERS)
    fpir, dir_ = named[stranger].mean(), right[~stranger].mean()
    # 264 strangers' searches at a promised 1 %: 8 or more named would be a 1-in-1,000 event
    assert named[stranger].sum() <= 7, f"strangers named: {fpir:.2%}"

    # the evaluation's decision on the same walks and gallery, embedded in process
    engine = EmbeddingEngine(served, device="cpu")
    everything = SilhouetteCache.load(held_out, list(ENROLLED + STRANGERS), progress=False)
    feats = engine.embed_many([everything.sequence(i) for i in range(len(everything))])
    enrolled_too = np.isin(everything.subjects, ENROLLED) | ~np.isin(everything.conditions, GALLERY)
    scores = view_scores(
        feats[enrolled_too],
        everything.subjects[enrolled_too],
        everything.conditions[enrolled_too],
        everything.views[enrolled_too],
    )
    gallery = np.flatnonzero(np.isin(scores.subjects, ENROLLED))
    best = scores.best[:, gallery].max(axis=2)  # [probes, enrolled]
    threshold = engine.card.identification.model().threshold(0.01, {11: len(ENROLLED)})
    assert rule["threshold"] == pytest.approx(threshold)
    top = best.max(axis=1)
    named_as = scores.subjects[gallery][best.argmax(axis=1)]
    walker = scores.subjects[scores.probe_subject]
    evaluated_right = (top >= np.float32(threshold)) & (named_as == walker)
    evaluated_named = top >= np.float32(threshold)
    is_stranger = np.isin(walker, STRANGERS)
    # the same searches, by the service and by the evaluation code: the same rates (scores of
    # batched and lone calls may differ in their last digits, so a walk at the threshold may not)
    assert abs(dir_ - evaluated_right[~is_stranger].mean()) <= 2 / (~is_stranger).sum()
    assert abs(fpir - evaluated_named[is_stranger].mean()) <= 2 / is_stranger.sum()
    assert dir_ > 0.5  # NM walkers are named nearly always, coats far less (README)
