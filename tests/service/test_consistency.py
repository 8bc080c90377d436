"""The service agrees with the protocol on real data. A gallery of the validation subjects'
(063–074) nm-01–04 is built through the API, their nm-05/06 are identified over HTTP, and the
rank-1 subjects are compared with ``rank1_predictions`` (``cos``) on the same probes and gallery:

- same views included: the whole gallery;
- same views excluded: for each probe view, that view's gallery samples are deleted through the
  API, the view's probes identified, and the samples enrolled again.

Runs on the shipped default model (or ``GAITLAB_TEST_MODEL``); skipped without one. On both
store backends: the embedded SQLite file and a throwaway PostgreSQL server."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from gaitlab.cli import main
from models.default import DEFAULT_MODEL
from models.engine import EmbeddingEngine
from tests.conftest import unpack
from tests.service.live_server import Server
from training.data.cache import SilhouetteCache
from training.evaluation.protocol import rank1_predictions

pytestmark = [pytest.mark.casia, pytest.mark.slow]

SUBJECTS = [f"{n:03d}" for n in range(63, 75)]
GALLERY = ["nm-01", "nm-02", "nm-03", "nm-04"]


@pytest.fixture(scope="module")
def trained_model() -> Path:
    path = Path(os.environ.get("GAITLAB_TEST_MODEL", DEFAULT_MODEL))
    if not path.is_file():
        pytest.skip("no trained model (ship the default model or set GAITLAB_TEST_MODEL)")
    return path


@pytest.fixture(scope="module")
def validation_tree(shared_casia_b, tmp_path_factory) -> Path:
    return unpack(shared_casia_b, tmp_path_factory.mktemp("casia-b-val"), tuple(SUBJECTS))


def npy(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, clip)
    return buffer.getvalue()


def identify_top1(client: httpx.Client, clip: np.ndarray) -> str:
    answer = client.post(
        "/identify",
        files={"clip": ("p.npy", npy(clip), "application/octet-stream")},
        params={"top_k": 1, "threshold": -1.0},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["hits"][0]["subject_id"]


def without_view(client: httpx.Client, gallery: SilhouetteCache, view: str):
    """Delete ``view``'s gallery samples through the API; returns what re-enrolls them."""
    for subject in SUBJECTS:
        for sample in client.get(f"/gallery/subjects/{subject}").json()["samples"]:
            if sample["view"] == view:
                answer = client.delete(f"/gallery/subjects/{subject}/samples/{sample['id']}")
                assert answer.status_code == 204, answer.text
    rows = [i for i, key in enumerate(gallery.keys) if key.view == view]

    def enroll_again() -> None:
        files = [
            ("clips", (f"{i}.npy", npy(gallery.sequence(i)), "application/octet-stream"))
            for i in rows
        ]
        manifest = [
            {
                "subject_id": gallery.keys[i].subject,
                "condition": gallery.keys[i].condition,
                "view": view,
            }
            for i in rows
        ]
        answer = client.post(
            "/gallery/samples", files=files, data={"manifest": json.dumps(manifest)}
        )
        assert answer.status_code == 201, answer.text

    return enroll_again


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_identify_over_http_matches_the_protocols_cos_rank1(
    trained_model, validation_tree, tmp_path, request, backend
):
    # sequences the service refuses (fewer than 5 frames) are left out on both sides
    gallery = SilhouetteCache.load(validation_tree, SUBJECTS, GALLERY, 5, progress=False)
    probes = SilhouetteCache.load(validation_tree, SUBJECTS, ["nm-05", "nm-06"], 5, progress=False)
    probe_views = np.array([key.view for key in probes.keys])
    env = {}
    if backend == "postgres":
        env["GAITLAB_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    server = Server(trained_model, tmp_path / "data", env=env).start()
    try:
        build = ["gallery", "build", "--casia-b", str(validation_tree), "--subjects", "063-074"]
        assert main([*build, "--conditions", ",".join(GALLERY), "--url", server.url]) == 0
        with httpx.Client(base_url=server.url, timeout=60) as client:
            served_all = [identify_top1(client, probes.sequence(i)) for i in range(len(probes))]
            served_excluded = np.empty(len(probes), dtype=object)
            for view in np.unique(probe_views):
                enroll_again = without_view(client, gallery, view)
                for i in np.flatnonzero(probe_views == view):
                    served_excluded[i] = identify_top1(client, probes.sequence(i))
                enroll_again()
    finally:
        server.stop()

    engine = EmbeddingEngine(trained_model, device="cpu")
    gallery_feats = engine.embed_many([gallery.sequence(i) for i in range(len(gallery))])
    probe_feats = engine.embed_many([probes.sequence(i) for i in range(len(probes))])
    gallery_subjects = np.array(gallery.subjects)
    gallery_views = np.array([key.view for key in gallery.keys])
    expected_all = rank1_predictions(probe_feats, gallery_feats, gallery_subjects, metric="cos")
    expected_excluded = np.empty(len(probes), dtype=object)
    for view in np.unique(probe_views):
        rows, kept = probe_views == view, gallery_views != view
        expected_excluded[rows] = rank1_predictions(
            probe_feats[rows], gallery_feats[kept], gallery_subjects[kept], metric="cos"
        )

    for name, served, expected in (
        ("same views included", served_all, expected_all),
        ("same views excluded", served_excluded, expected_excluded),
    ):
        agreement = np.mean(np.array(served, dtype=object) == expected)
        print(f"{name}: service and protocol agree on {agreement:.2%} of {len(probes)} probes")
        assert agreement >= 0.99  # ties between equal scores are the only allowed difference
