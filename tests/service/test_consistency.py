"""The service agrees with the protocol on real data: a gallery of nm-01–04 built through the API,
nm-05/06 identified over HTTP, against ``rank1_predictions`` with ``cos`` on the same embeddings
(whole gallery, same views included). Needs a trained model: the shipped default model, or
``GAITLAB_TEST_MODEL``; skipped without one."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from gaitlab.cli import main
from models.default import DEFAULT_MODEL
from models.engine import EmbeddingEngine
from tests.service.test_api_e2e import Server
from training.data.cache import SilhouetteCache
from training.evaluation.protocol import rank1_predictions

pytestmark = [pytest.mark.casia, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_model() -> Path:
    path = Path(os.environ.get("GAITLAB_TEST_MODEL", DEFAULT_MODEL))
    if not path.is_file():
        pytest.skip("no trained model (ship the default model or set GAITLAB_TEST_MODEL)")
    return path


def test_identify_over_http_matches_the_protocols_cos_rank1(trained_model, training_tree, tmp_path):
    subjects = ["001", "002", "003", "004", "065", "066"]
    server = Server(trained_model, tmp_path / "data").start()
    try:
        build = [
            "gallery",
            "build",
            "--casia-b",
            str(training_tree),
            "--subjects",
            ",".join(subjects),
        ]
        assert main([*build, "--url", server.url]) == 0
        probes = SilhouetteCache.load(training_tree, subjects, ["nm-05", "nm-06"], progress=False)
        served = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for index in range(len(probes)):
                buffer = io.BytesIO()
                np.save(buffer, probes.sequence(index))
                answer = client.post(
                    "/identify",
                    files={"clip": ("p.npy", buffer.getvalue(), "application/octet-stream")},
                    params={"top_k": 1, "threshold": -1.0},
                )
                assert answer.status_code == 200, answer.text
                served.append(answer.json()["hits"][0]["subject_id"])
    finally:
        server.stop()

    engine = EmbeddingEngine(trained_model, device="cpu")
    gallery = SilhouetteCache.load(
        training_tree, subjects, ["nm-01", "nm-02", "nm-03", "nm-04"], progress=False
    )
    gallery_feats = engine.embed_many([gallery.sequence(i) for i in range(len(gallery))])
    probe_feats = engine.embed_many([probes.sequence(i) for i in range(len(probes))])
    expected = rank1_predictions(probe_feats, gallery_feats, gallery.subjects, metric="cos")
    agreement = np.mean(np.array(served) == expected)
    print(f"service vs protocol cos rank-1: {agreement:.4f} of {len(served)} probes agree")
    assert agreement >= 0.99  # ties between equal scores are the only allowed difference
