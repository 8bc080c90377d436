"""service.gallery.index: exact per-subject search that ranks as the protocol's cos distance."""

from __future__ import annotations

import numpy as np

from models.scoring import part_normalise, similarity
from service.gallery.index import GalleryIndex


def gallery(rng, subjects=20, per_subject=5, c=16, p=4):
    feats = rng.standard_normal((subjects * per_subject, c, p)).astype(np.float32)
    labels = [f"s{i:02d}" for i in range(subjects) for _ in range(per_subject)]
    return feats, labels


def test_search_ranks_subjects_by_their_best_sample_as_cos_distance_does():
    rng = np.random.default_rng(0)
    feats, labels = gallery(rng)
    index = GalleryIndex(16 * 4, "v1")
    index.add(np.arange(len(feats)) + 100, labels, part_normalise(feats))
    query = rng.standard_normal((1, 16, 4)).astype(np.float32)
    hits = index.search(part_normalise(query)[0], top_k=20)

    scores = similarity(query, feats)[0]  # mean part cosine = 1 - the protocol's cos distance
    best = {}
    for score, label, sample in zip(scores, labels, range(100, 200), strict=True):
        if label not in best or score > best[label][0]:
            best[label] = (score, sample)
    expected = sorted(best.items(), key=lambda item: -item[1][0])
    assert [h.subject_id for h in hits] == [label for label, _ in expected]
    assert [h.sample_id for h in hits] == [sample for _, (_, sample) in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, (s, _) in expected], rtol=1e-5)


def test_search_widens_until_enough_distinct_subjects():
    rng = np.random.default_rng(1)
    index = GalleryIndex(8, "v1")
    near = np.tile(np.eye(8, dtype=np.float32)[0], (50, 1))  # 50 samples of one subject
    far = np.eye(8, dtype=np.float32)[1:3]
    index.add(np.arange(52), ["crowd"] * 50 + ["x", "y"], np.vstack([near, far]))
    hits = index.search(np.eye(8, dtype=np.float32)[0] + 0.01 * rng.random(8), top_k=3)
    assert hits[0].subject_id == "crowd"
    assert {h.subject_id for h in hits} == {"crowd", "x", "y"}


def test_remove_and_score_subject():
    index = GalleryIndex(4, "v1")
    vectors = np.eye(4, dtype=np.float32)
    index.add(np.array([1, 2, 3]), ["a", "a", "b"], vectors[:3])
    assert index.score_subject(vectors[1], "a").sample_id == 2
    index.remove([2])
    assert index.score_subject(vectors[1], "a").score == 0.0
    index.remove([1])
    assert index.score_subject(vectors[0], "a") is None
    assert len(index) == 1
    assert index.subjects == 1
    assert [h.subject_id for h in index.search(vectors[2], top_k=5)] == ["b"]


def test_empty_index_returns_nothing():
    assert GalleryIndex(4, "v1").search(np.ones(4, np.float32), top_k=5) == []
