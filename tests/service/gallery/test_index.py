"""service.gallery.index: exact per-subject search that ranks as the protocol's cos distance."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from models.scoring import part_normalise, similarity
from service.gallery.index import COMPACT_MIN, GalleryIndex, IndexPolicy
from service.gallery.lists import ApproximateLists, list_count
from service.gallery.policy import MIN_TRAINING


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


def test_search_reaches_past_a_crowded_subject():
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


@pytest.mark.parametrize("top_k", [1, 3, 7, 40])
def test_search_is_exact_against_brute_force_with_uneven_subjects(top_k):
    rng = np.random.default_rng(top_k)
    sizes = rng.integers(1, 30, 25)  # 25 subjects, 1–29 samples each
    subjects = [f"s{i}" for i, size in enumerate(sizes) for _ in range(size)]
    centres = rng.standard_normal((25, 16))
    owner = np.array([int(s[1:]) for s in subjects])
    vectors = (centres[owner] + 0.8 * rng.standard_normal((len(subjects), 16))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = GalleryIndex(16, "v")
    index.add(np.arange(len(subjects)), subjects, vectors)
    index.remove([0, 5, 17])  # removals change the most samples per subject
    kept = np.setdiff1d(np.arange(len(subjects)), [0, 5, 17])
    for _ in range(20):
        query = rng.standard_normal(16).astype(np.float32)
        scores = vectors[kept] @ query
        best = {}
        for i, score in zip(kept, scores, strict=True):
            best[subjects[i]] = max(best.get(subjects[i], -np.inf), score)
        expected = sorted(best, key=best.get, reverse=True)[:top_k]
        found = index.search(query, top_k)
        assert [h.subject_id for h in found] == expected
        np.testing.assert_allclose([h.score for h in found], [best[s] for s in expected], rtol=1e-5)


# --- the approximate index (IVF)


def clustered(rng, subjects: int, per_subject: int, dim: int = 64, spread: float = 0.5):
    """Unit vectors around one centre per subject: (ids, subject ids, vectors [n, dim])."""
    centres = rng.standard_normal((subjects, dim)).astype(np.float32)
    owner = np.repeat(np.arange(subjects), per_subject)
    vectors = centres[owner] + spread * rng.standard_normal((len(owner), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.arange(len(owner)), [f"s{i}" for i in owner], vectors, centres


def list_ids(index: GalleryIndex) -> set[int]:
    """The sample ids the approximate index's lists hold (tombstones included)."""
    ivf = faiss.extract_index_ivf(index._lists.index)
    found = set()
    for number in range(ivf.nlist):
        size = ivf.invlists.list_size(number)
        found.update(faiss.rev_swig_ptr(ivf.invlists.get_ids(number), size).tolist())
    return found


def queries_near(rng, centres, count: int, spread: float = 0.5) -> np.ndarray:
    picked = centres[rng.integers(len(centres), size=count)]
    queries = picked + spread * rng.standard_normal(picked.shape).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


@pytest.mark.parametrize("reduced_dim", [64, 16])  # lists of whole vectors, then reduced ones
def test_a_large_gallery_gets_an_approximate_index_that_agrees_with_exact_search(
    tmp_path, reduced_dim
):
    rng = np.random.default_rng(0)
    ids, subjects, vectors, centres = clustered(rng, 400, 10)
    policy = IndexPolicy("auto", approximate_from=3000, nprobe=8, reduced_dim=reduced_dim)
    index = GalleryIndex(64, "v", "cpu", policy, centroids_dir=tmp_path)
    index.add(ids, subjects, vectors)
    exact = GalleryIndex(64, "v", "cpu", IndexPolicy("exact"))
    exact.add(ids, subjects, vectors)
    assert index.kind == "approximate"
    assert exact.kind == "exact"
    assert index.lists == list_count(4000)
    agree = 0
    for query in queries_near(rng, centres, 200):
        truth = exact.search(query, 5)
        assert index.search(query, 5, exact=True) == truth  # every list read: exact search
        found = index.search(query, 5)
        agree += found[0].subject_id == truth[0].subject_id
        for hit in found:  # the shortlist is scored on the full vectors: exact scores
            assert hit.score == pytest.approx(float(vectors[hit.sample_id] @ query), abs=1e-5)
    assert agree >= 198
    hit = index.score_subject(vectors[7], subjects[7])
    assert hit.sample_id == 7
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    index.remove([7])
    assert index.score_subject(vectors[7], subjects[7]).sample_id != 7
    assert index.search(vectors[7], 1)[0].sample_id != 7  # gone from the lists' answers too
    assert len(index) == 3999
    assert list_ids(index) - index._removed == set(range(4000)) - {7}

    # the trained centroids were kept: a restart adds the vectors to them, no training
    kept = list(tmp_path.glob("*.ivf"))
    assert len(kept) == 1
    stamp = kept[0].stat().st_mtime_ns  # a training would write it again
    again = GalleryIndex(64, "v", "cpu", policy, centroids_dir=tmp_path)
    again.add(ids, subjects, vectors)
    assert again.kind == "approximate"
    assert kept[0].stat().st_mtime_ns == stamp
    assert again.search(vectors[7], 1)[0].sample_id == 7

    # an unreadable kept file is trained again, not a failed start
    kept[0].write_bytes(b"not an index")
    third = GalleryIndex(64, "v", "cpu", policy, centroids_dir=tmp_path)
    third.add(ids, subjects, vectors)
    assert third.kind == "approximate"
    assert third.search(vectors[7], 1)[0].sample_id == 7
    assert kept[0].read_bytes() != b"not an index"


@pytest.fixture
def held_retraining(monkeypatch):
    """An event: a background retraining builds its lists only once it is set, so writes land
    during it for sure."""
    release = threading.Event()
    build = ApproximateLists.build

    def held_build(self, ids, vectors):
        if threading.current_thread().name == "index-retrain":
            assert release.wait(60)
        return build(self, ids, vectors)

    monkeypatch.setattr(ApproximateLists, "build", held_build)
    yield release
    release.set()


def test_a_growing_gallery_switches_to_lists_in_the_background_and_keeps_every_write(
    held_retraining,
):
    rng = np.random.default_rng(1)
    ids, subjects, vectors, _centres = clustered(rng, 300, 10)
    index = GalleryIndex(64, "v", "cpu", IndexPolicy("auto", approximate_from=2500, nprobe=8))
    index.add(ids[:2000], subjects[:2000], vectors[:2000])
    assert index.kind == "exact"
    index.add(ids[2000:2600], subjects[2000:2600], vectors[2000:2600])  # starts the training
    index.add(ids[2600:], subjects[2600:], vectors[2600:])  # during it
    index.remove([5, 2700])
    assert index.kind == "exact"  # the exact search answers until the lists are ready
    held_retraining.set()
    index.wait_for_retraining(60)
    assert index.kind == "approximate"
    assert len(index) == 2998
    # the writes made during the training were replayed: the lists hold every sample
    assert list_ids(index) - index._removed == set(range(3000)) - {5, 2700}
    for gone in (5, 2700):
        assert index.score_subject(vectors[gone], subjects[gone]).sample_id != gone
        assert index.search(vectors[gone], 1)[0].sample_id != gone
    for found in (index.search(vectors[2999], 1, exact=True)[0], index.search(vectors[2999], 1)[0]):
        assert found.sample_id == 2999
        assert found.score == pytest.approx(1.0, abs=1e-5)


def test_lists_built_while_a_retraining_runs_are_not_replaced_by_its_stale_ones(
    held_retraining,
):
    rng = np.random.default_rng(8)
    ids, subjects, vectors, _ = clustered(rng, 260, 10)  # 2,600 samples
    index = GalleryIndex(64, "v", "cpu", IndexPolicy("auto", approximate_from=2500, nprobe=8))
    index.add(ids[:2000], subjects[:2000], vectors[:2000])
    index.add(ids[2000:], subjects[2000:], vectors[2000:])  # starts the training (held)
    index.remove(ids.tolist())  # everyone leaves; their zeroed slots wait for the retraining
    index.add(ids, subjects, vectors)  # and comes back at once: lists built on the spot
    assert index.kind == "approximate"
    held_retraining.set()
    index.wait_for_retraining(60)
    assert list_ids(index) == set(ids.tolist())
    for sample in (0, 1234, 2599):
        assert index.search(vectors[sample], 1)[0].sample_id == sample


def test_small_galleries_and_the_exact_policy_stay_exact():
    rng = np.random.default_rng(2)
    ids, subjects, vectors, _ = clustered(rng, 100, 10)
    assert not IndexPolicy("approximate").wants_lists(MIN_TRAINING - 1)
    assert IndexPolicy("approximate").wants_lists(MIN_TRAINING)
    assert not IndexPolicy("exact").wants_lists(10**7)
    index = GalleryIndex(64, "v", "cpu", IndexPolicy("approximate"))
    index.add(ids, subjects, vectors)  # 1,000 samples: too few to train lists
    assert index.kind == "exact"
    assert index.lists == 0


# --- removal: tombstones, compacted in one pass


def test_removed_samples_leave_every_answer_at_once_and_their_vectors_in_one_pass():
    rng = np.random.default_rng(3)
    ids, subjects, vectors, _ = clustered(rng, 100, 10)  # 1,000 samples
    index = GalleryIndex(64, "v", "cpu", IndexPolicy("exact"))
    index.add(ids, subjects, vectors)
    gone = list(range(0, 2 * (COMPACT_MIN - 1), 2))  # one short of a compaction
    index.remove(gone)
    assert len(index) == 1000 - len(gone)
    assert index.held == 1000  # tombstones: the zeroed slots are still there
    for sample in gone[:20]:
        query = vectors[sample]
        for exact in (True, False):
            assert sample not in {h.sample_id for h in index.search(query, 100, exact)}
        best = index.search(query, 1)[0]  # the next best sample, not nothing
        assert best.score == pytest.approx(max(vectors[np.setdiff1d(ids, gone)] @ query))
    index.remove([gone[0]])  # removing twice counts once
    assert len(index) == 1000 - len(gone)
    index.remove([1])  # the tombstone that reaches COMPACT_MIN: every vector goes, in one pass
    assert index.held == len(index) == 1000 - len(gone) - 1
    assert index._removed == set()
    assert 1 not in {h.sample_id for h in index.search(vectors[1], 100)}


def test_a_removed_id_added_again_answers_with_its_new_vector():
    index = GalleryIndex(4, "v1")
    vectors = np.eye(4, dtype=np.float32)
    index.add(np.array([1, 2]), ["a", "b"], vectors[:2])
    index.remove([2])
    index.add(np.array([2]), ["c"], vectors[3:4])  # a store may hand out an id again
    assert len(index) == index.held == 2
    hit = index.search(vectors[3], 1)[0]
    assert (hit.subject_id, hit.sample_id, hit.score) == ("c", 2, pytest.approx(1.0))
    assert index.score_subject(vectors[1], "b") is None


def test_tombstones_stay_out_of_the_approximate_answers_and_of_a_retraining():
    rng = np.random.default_rng(4)
    ids, subjects, vectors, centres = clustered(rng, 300, 10)
    policy = IndexPolicy("approximate", nprobe=8)
    index = GalleryIndex(64, "v", "cpu", policy)
    index.add(ids[:2500], subjects[:2500], vectors[:2500])
    gone = list(range(0, 200, 2))
    index.remove(gone)
    assert index.held == 2500
    assert len(index) == 2400
    for sample in gone[:20]:
        assert sample not in {h.sample_id for h in index.search(vectors[sample], 50)}
    exact = GalleryIndex(64, "v", "cpu", IndexPolicy("exact"))
    kept = np.setdiff1d(ids[:2500], gone)
    exact.add(kept, [subjects[i] for i in kept], vectors[kept])
    for query in queries_near(rng, centres, 50):
        assert index.search(query, 5, exact=True) == exact.search(query, 5)
    index._lists.trained_at = 1  # due for a retraining at the next addition
    index.add(ids[2500:], subjects[2500:], vectors[2500:])
    index.wait_for_retraining(60)
    assert index._lists.trained_at > 1  # it retrained
    assert not list_ids(index) & set(gone)  # the new lists were built without the tombstones
    assert list_ids(index) - index._removed == set(range(3000)) - set(gone)


def test_the_largest_subject_is_followed_through_additions_and_removals():
    rng = np.random.default_rng(5)
    index = GalleryIndex(4, "v1", "cpu", IndexPolicy("exact"))
    owners: dict[int, str] = {}
    for step in range(400):
        if owners and rng.random() < 0.45:
            gone = [
                int(i) for i in rng.choice(list(owners), size=min(3, len(owners)), replace=False)
            ]
            index.remove(gone)
            for sample in gone:
                del owners[sample]
        else:
            subject = f"s{rng.integers(6)}"
            index.add(np.array([step + 1000]), [subject], rng.random((1, 4)).astype(np.float32))
            owners[step + 1000] = subject
        sizes = [list(owners.values()).count(s) for s in set(owners.values())]
        assert index._book.most == max(sizes, default=0)  # what bounds the search's depth


def test_no_compaction_while_a_retraining_snapshots_and_ids_added_again_are_replayed():
    rng = np.random.default_rng(6)
    ids, subjects, vectors, _ = clustered(rng, 60, 10)
    index = GalleryIndex(64, "v", "cpu", IndexPolicy("exact"))
    index.add(ids, subjects, vectors)
    index._lists.replay = []  # as while a retraining runs: its snapshot holds the vectors
    index.remove(list(range(COMPACT_MIN)))
    assert index.held == 600  # compaction waits for the retraining's end
    assert len(index) == 600 - COMPACT_MIN
    index.add(np.array([3]), ["new"], vectors[400:401])  # id 3 again, another vector
    assert [action for action, *_ in index._lists.replay] == ["remove", "add"]  # in that order
    hit = index.search(vectors[400], 2, exact=True)
    assert {(h.subject_id, h.sample_id) for h in hit} == {("new", 3), (subjects[400], 400)}
    index._lists.replay = None
    index.remove([COMPACT_MIN])  # the next removal compacts
    assert index.held == len(index) == 600 - COMPACT_MIN


def held_vectors(index: GalleryIndex) -> np.ndarray:
    """Every vector the index holds in memory, full and reduced: float32 [n, d] and [m, r]."""
    flat = faiss.downcast_index(index._vectors.index).reconstruct_n(0, index._vectors.ntotal)
    reduced = np.empty((0, 0), np.float32)
    if index._lists.index is not None:
        ivf = faiss.downcast_index(index._lists.index.index)
        lists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_codes(i), lists.list_size(i) * ivf.code_size)
            for i in range(ivf.nlist)
        ]
        codes = np.concatenate([np.frombuffer(bytes(p), np.uint8) for p in parts])
        reduced = codes.view(np.float32).reshape(-1, ivf.d)
    return flat, reduced


@pytest.mark.parametrize("policy", ["exact", "approximate"])
def test_a_removed_sample_leaves_no_copy_of_its_vector_in_memory(policy):
    rng = np.random.default_rng(7)
    ids, subjects, vectors, _ = clustered(rng, 300, 10)
    index = GalleryIndex(64, "v", "cpu", IndexPolicy(policy))
    index.add(ids[:2500], subjects[:2500], vectors[:2500])
    erased = [3, 700, 2499]
    before_full, before_reduced = held_vectors(index)
    assert any((before_full == vectors[i]).all(axis=1).any() for i in erased)
    index.remove(erased)
    full, reduced = held_vectors(index)
    assert index.held == 2500  # no compaction yet: the slots stay, zeroed
    for sample in erased:
        assert not (full == vectors[sample]).all(axis=1).any()
        assert np.abs(full @ vectors[sample]).max() < 0.999 * vectors[sample] @ vectors[sample]
    assert (np.abs(full).sum(axis=1) == 0).sum() == len(erased)
    if policy == "approximate":
        assert len(reduced) == len(before_reduced) - len(erased)  # gone from the lists
        projected = index._lists.index.chain.at(0).apply(vectors[erased])
        for row in projected:
            assert not np.isclose(reduced, row, atol=1e-6).all(axis=1).any()
    for sample in erased:
        assert sample not in {h.sample_id for h in index.search(vectors[sample], 50, True)}
