"""service.recognition with a real ONNX model, real SQLite and real FAISS (no HTTP)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from models.engine import EmbeddingEngine
from service.clips import UnsupportedFormatError
from service.decisions import NoThresholdError
from service.gallery import open_store
from service.gallery.store import SubjectNotFoundError
from service.recognition import Recognizer, TooFewFramesError
from tests.helpers import toy_model, with_identification


def walker_clip(shift: int, frames: int = 8, width: int = 12) -> bytes:
    """A raw-mask clip (240×320) of a bar whose position and width identify the 'person'."""
    clip = np.zeros((frames, 240, 320), np.uint8)
    for t in range(frames):
        clip[t, 40:200, 100 + shift + t : 100 + shift + t + width] = 255
        clip[t, 40:70, 90 + shift : 90 + shift + 3 * width] = 255  # a 'head' that sets the shape
    buffer = io.BytesIO()
    np.save(buffer, clip)
    return buffer.getvalue()


def person(n: int) -> bytes:
    return walker_clip(shift=0, width=8 + 6 * n)


@pytest.fixture
def recognizer(tmp_path):
    engine = EmbeddingEngine(toy_model(tmp_path / "toy.onnx", threshold=0.99), device="cpu")
    store = open_store(tmp_path / "gallery.db")
    yield Recognizer.open(engine, store)
    store.close()


def test_enroll_identify_verify_forget(recognizer):
    for n in range(3):
        recognizer.enroll(f"p{n}", person(n), condition="nm-01", view="090")
    result = recognizer.identify(person(1), top_k=3)
    assert result.decision == "p1"
    assert result.hits[0].subject_id == "p1"
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert result.frames == 8
    assert result.model_version == "toy-1"

    assert recognizer.verify(person(2), "p2").accepted
    assert not recognizer.verify(person(2), "p0").accepted
    with pytest.raises(SubjectNotFoundError):
        recognizer.verify(person(2), "nobody")

    assert recognizer.delete_subject("p1") == 1
    after = recognizer.identify(person(1), top_k=3)
    assert "p1" not in [h.subject_id for h in after.hits]
    assert after.decision is None  # nobody left passes the threshold


def test_threshold_override_and_unknowns(recognizer):
    recognizer.enroll("p0", person(0))
    stranger = person(4)
    assert recognizer.identify(stranger).decision is None
    assert recognizer.identify(stranger, threshold=-1.0).decision == "p0"


def test_a_score_equal_to_the_threshold_passes_and_one_step_below_fails(recognizer):
    """The decision compares as evaluation and calibration do: score >= threshold in float32."""
    recognizer.enroll("p0", person(0))
    probe = person(1)
    score = recognizer.identify(probe).hits[0].score
    assert score < 0.99  # another person: the card's threshold is not what decides below
    at = np.float32(score)
    above = float(np.nextafter(at, np.float32(2)))
    assert recognizer.identify(probe, threshold=float(at)).decision == "p0"
    assert recognizer.identify(probe, threshold=above).decision is None
    # a threshold typed in float64 between the two float32 values is the float32 nearest it
    assert recognizer.identify(probe, threshold=float(at) + 1e-12).decision == "p0"
    # verify scores with numpy, identify with FAISS: the last bit may differ; each is exact
    at = np.float32(recognizer.verify(probe, "p0").score)
    above = float(np.nextafter(at, np.float32(2)))
    assert recognizer.verify(probe, "p0", threshold=float(at)).accepted
    assert not recognizer.verify(probe, "p0", threshold=above).accepted


def test_restart_rebuilds_the_index_and_re_embeds_for_a_new_model(tmp_path):
    store = open_store(tmp_path / "gallery.db")
    first = Recognizer.open(EmbeddingEngine(toy_model(tmp_path / "a.onnx", version="a")), store)
    first.enroll("p0", person(0))
    first.enroll("p1", person(1))
    again = Recognizer.open(EmbeddingEngine(toy_model(tmp_path / "a.onnx", version="a")), store)
    assert len(again.index) == 2
    newer = Recognizer.open(EmbeddingEngine(toy_model(tmp_path / "b.onnx", version="b")), store)
    assert len(newer.index) == 2
    assert len(store.embeddings("b").sample_ids) == 2
    assert newer.identify(person(1)).decision == "p1"
    store.close()


def test_bad_uploads(recognizer):
    with pytest.raises(UnsupportedFormatError):
        recognizer.identify(b"definitely not a clip")
    with pytest.raises(TooFewFramesError, match="usable frames"):
        recognizer.identify(walker_clip(0, frames=3))


def test_no_threshold_without_a_card(tmp_path):
    from tests.models.test_engine import reduce_model

    engine = EmbeddingEngine(reduce_model(tmp_path / "bare.onnx"), device="cpu")
    store = open_store(tmp_path / "g.db")
    recognizer = Recognizer.open(engine, store)
    with pytest.raises(NoThresholdError):
        recognizer.identify(person(0))
    assert recognizer.identify(person(0), threshold=0.5).decision is None  # empty gallery
    store.close()


def test_bulk_enrollment_is_all_or_none_and_embeds_as_single_enrollment_does(recognizer):
    from service.clips import CorruptClipError
    from service.recognition import Enrollment

    items = [Enrollment(f"p{n}", person(n), "nm-01", "090") for n in range(3)]
    items.append(Enrollment("p0", walker_clip(0, frames=12, width=8), "nm-02"))  # another length
    with pytest.raises(CorruptClipError, match="clip 2"):
        recognizer.enroll_many([*items[:2], Enrollment("p9", b"\x93NUMPY broken"), items[3]])
    assert len(recognizer.index) == 0
    assert recognizer.store.list_subjects()[1] == 0

    samples = recognizer.enroll_many(items)
    assert [s.subject_id for s in samples] == ["p0", "p1", "p2", "p0"]
    assert [s.frames for s in samples] == [8, 8, 8, 12]
    assert len(recognizer.index) == 4
    stored = recognizer.store.embeddings(recognizer.model_version)
    for sample, vector in zip(samples, stored.vectors, strict=True):
        single = recognizer.probe(items[samples.index(sample)].upload).vector
        np.testing.assert_allclose(vector, single, atol=1e-5)
    assert recognizer.identify(person(1)).decision == "p1"


@pytest.fixture
def deciding(tmp_path):
    """A recognizer whose model card has identification curves (``with_identification``)."""
    model = with_identification(toy_model(tmp_path / "toy.onnx", threshold=0.99), 0.99, 0.002)
    store = open_store(tmp_path / "gallery.db")
    yield Recognizer.open(EmbeddingEngine(model, device="cpu"), store)
    store.close()


def test_identification_decides_at_the_promised_fpir_of_the_gallery_it_holds(deciding):
    deciding.enroll("p0", person(0), view="090")
    model = deciding.active.stranger_model
    one = deciding.identify(person(0))
    assert one.rule.basis == "fpir"
    assert one.rule.fpir == 0.01
    assert one.rule.gallery_subjects == 1
    assert one.threshold == model.threshold(0.01, {1: 1})
    assert one.decision == "p0"
    top = one.hits[0]
    assert top.views == 1
    assert top.stranger_chance == pytest.approx(float(model.fpir(top.score, {1: 1})))
    assert one.margin is None  # nobody to compare with

    for n in range(1, 4):  # more subjects, more views: more chances for a stranger
        for view in ("000", "090", "180"):
            deciding.enroll(f"p{n}", person(n), view=view)
    many = deciding.identify(person(0), top_k=3)
    assert many.rule.gallery_subjects == 4
    assert deciding.composition.composition() == {1: 1, 3: 3}
    assert many.threshold == model.threshold(0.01, {1: 1, 3: 3})
    assert many.threshold > one.threshold
    assert many.margin == pytest.approx(many.hits[0].score - many.hits[1].score)
    chances = [h.stranger_chance for h in many.hits]
    assert chances == sorted(chances)  # lower scores: more strangers reach them

    looser = deciding.identify(person(0), fpir=0.2)
    assert looser.rule.fpir == 0.2
    assert looser.threshold < many.threshold
    given = deciding.identify(person(0), threshold=0.5)
    assert (given.rule.basis, given.rule.fpir, given.threshold) == ("threshold", None, 0.5)

    deciding.delete_subject("p1")
    assert deciding.composition.composition() == {1: 1, 3: 2}
    assert deciding.identify(person(0)).rule.gallery_subjects == 3


def test_a_card_without_curves_decides_per_pair_and_says_so(recognizer):
    recognizer.enroll("p0", person(0))
    result = recognizer.identify(person(0))
    assert (result.rule.basis, result.rule.far, result.rule.fpir) == ("pair_far", 0.01, None)
    assert result.hits[0].stranger_chance is None
    with pytest.raises(NoThresholdError, match="no identification curves"):
        recognizer.identify(person(0), fpir=0.01)


def test_verify_is_a_per_pair_decision_with_its_chance(deciding):
    deciding.enroll("p0", person(0))
    result = deciding.verify(person(1), "p0")
    assert (result.rule.basis, result.rule.far) == ("pair_far", 0.01)
    curve = deciding.active.engine.card.identification.pair_curve.rates_model()
    assert result.false_accept_chance == pytest.approx(float(curve(result.score)))
