"""service.refresh in process: re-embedding in the background, the atomic swap, refusals."""

from __future__ import annotations

import pytest

from models.engine import EmbeddingEngine, EngineOptions
from models.scoring import part_normalise
from service.gallery import open_store
from service.recognition import Recognizer
from service.refresh import (
    AlreadyActiveError,
    InvalidModelError,
    ModelRefresher,
    RefreshInProgressError,
    read_active_model,
)
from tests.helpers import toy_model
from tests.models.test_engine import reduce_model
from tests.service.test_recognition import person, walker_clip


@pytest.fixture
def gallery(tmp_path):
    store = open_store(tmp_path / "gallery.db")
    recognizer = Recognizer.open(
        EmbeddingEngine(toy_model(tmp_path / "a.onnx", version="a")), store
    )
    for n in range(4):
        recognizer.enroll(f"p{n}", person(n))
    refresher = ModelRefresher(recognizer, tmp_path / "models", EngineOptions("cpu"))
    yield recognizer, refresher, tmp_path
    refresher.stop()
    store.close()


def test_refresh_re_embeds_everything_then_swaps(gallery):
    recognizer, refresher, tmp_path = gallery
    status = refresher.start(toy_model(tmp_path / "b.onnx", version="b"))
    assert status.state == "running"
    assert status.total == 4
    assert refresher.wait(30).state == "done"
    assert refresher.status.done == 4
    assert recognizer.model_version == "b"
    assert recognizer.identify(person(2)).model_version == "b"
    assert recognizer.identify(person(2)).decision == "p2"
    store = recognizer.store
    assert len(store.embeddings("b").sample_ids) == 4
    assert len(store.embeddings("a").sample_ids) == 0  # only the new model's embeddings remain
    kept = read_active_model(store, tmp_path / "models")
    assert kept == tmp_path / "models" / "b.onnx"
    assert kept.is_file()
    assert store.get_model("b") == kept.read_bytes()  # for replicas that do not have it
    assert store.changes_since(0)[-1].kind == "activate"


def test_samples_enrolled_before_the_swap_are_embedded_by_the_new_model(gallery):
    recognizer, _, tmp_path = gallery
    engine_b = EmbeddingEngine(toy_model(tmp_path / "b.onnx", version="b"))
    late = recognizer.enroll("late", walker_clip(5, width=30))  # embedded by "a" only
    recognizer.activate(engine_b, tmp_path / "b.onnx")
    assert late.id in recognizer.store.embeddings("b").sample_ids
    assert len(recognizer.index) == 5
    assert recognizer.identify(walker_clip(5, width=30)).decision == "late"


def test_bad_models_are_refused_and_the_old_one_keeps_serving(gallery):
    recognizer, refresher, tmp_path = gallery
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 not an onnx model at all")
    wrong_contract = reduce_model(tmp_path / "float.onnx", dims=("batch", "frames", 64, 64))
    no_card = reduce_model(tmp_path / "bare.onnx")
    for path, message in (
        (corrupt, "not a loadable ONNX model"),
        (wrong_contract, "uint8 \\[batch, frames, 64, 44\\]"),
        (no_card, "no model card"),
        (tmp_path / "missing.onnx", "no model file"),
    ):
        with pytest.raises(InvalidModelError, match=message):
            refresher.start(path)
    with pytest.raises(AlreadyActiveError):
        refresher.start(toy_model(tmp_path / "a-again.onnx", version="a"))
    assert refresher.status.state == "idle"
    assert recognizer.model_version == "a"
    assert recognizer.identify(person(1)).decision == "p1"


def test_one_refresh_at_a_time_and_a_cancelled_one_leaves_nothing(gallery):
    recognizer, refresher, tmp_path = gallery
    for n in range(200):  # enough work that the refresh is still running below
        recognizer.enroll(f"q{n}", walker_clip(n % 40, width=6 + n % 30))
    refresher.batch_size = 1
    refresher.start(toy_model(tmp_path / "b.onnx", version="b"))
    with pytest.raises(RefreshInProgressError):
        refresher.start(toy_model(tmp_path / "c.onnx", version="c"))
    refresher.stop()
    assert refresher.status.state == "failed"
    assert "cancelled" in refresher.status.error
    assert recognizer.model_version == "a"
    assert len(recognizer.store.embeddings("b").sample_ids) == 0
    assert len(recognizer.store.embeddings("a").sample_ids) == 204


def test_an_enrollment_embedded_by_a_replaced_model_is_embedded_again(gallery):
    """What another replica's activation looks like to this one: the store's active model
    changes under an enrollment; it switches (its ``sync``) and embeds again."""
    recognizer, _, tmp_path = gallery
    engine_b = EmbeddingEngine(toy_model(tmp_path / "b.onnx", version="b"))
    store = recognizer.store
    store.activate_model(
        "b", str(tmp_path / "b.onnx"), lambda clips: part_normalise(engine_b.embed_many(clips))
    )
    recognizer.follow(lambda: recognizer.switch(engine_b))
    sample = recognizer.enroll("after", walker_clip(7, width=26))
    assert recognizer.model_version == "b"
    assert sample.id in store.embeddings("b").sample_ids
    assert sample.id not in store.embeddings("a").sample_ids
    assert recognizer.identify(walker_clip(7, width=26)).decision == "after"
