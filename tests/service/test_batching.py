"""service.batching with real ONNX models (the toy one; the shipped default for the narrow
copies): batches form, results equal the unbatched ones, errors stay with their clip, a
cancelled clip is skipped, one alone never waits, several go narrow side by side."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from models.default import DEFAULT_MODEL
from models.engine import EmbeddingEngine
from service.batching import EmbedBatcher
from tests.helpers import toy_model


class FaultyEngine:
    """A real engine that refuses every batch holding a clip whose first pixel is 1 (fault
    injection: valid clips make no real model fail)."""

    def __init__(self, engine: EmbeddingEngine):
        self.engine, self.calls = engine, []

    def embed(self, clips: np.ndarray) -> np.ndarray:
        self.calls.append(len(clips))
        if (clips[:, 0, 0, 0] == 1).any():
            raise RuntimeError("this batch holds the bad clip")
        return self.engine.embed(clips)


class SlowEngine(FaultyEngine):
    """Holds each call for a moment, so requests pile up behind it."""

    def embed(self, clips: np.ndarray) -> np.ndarray:
        time.sleep(0.2)
        return super().embed(clips)


@pytest.fixture
def engine(tmp_path):
    return EmbeddingEngine(toy_model(tmp_path / "toy.onnx"), device="cpu")


def clips(count: int, frames: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(2, 255, (frames, 64, 44), dtype=np.uint8) for _ in range(count)]


def concurrently(batcher: EmbedBatcher, engine, inputs: list[np.ndarray]) -> list:
    """Each clip from its own thread, all announced before any is submitted."""
    results: list = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def request(i: int) -> None:
        with batcher.incoming() as ticket:
            barrier.wait()  # every request is announced (decoding) before any submits
            try:
                results[i] = ticket.embed(engine, [inputs[i]])[0]
            except Exception as error:
                results[i] = error

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_clips_are_embedded_together_and_equal_the_unbatched(engine):
    counted = FaultyEngine(engine)
    batcher = EmbedBatcher(max_batch=8, max_wait_s=1.0, workers=1)
    inputs = clips(6) + clips(3, frames=9, seed=1)
    results = concurrently(batcher, counted, inputs)
    batcher.close()
    assert max(counted.calls) > 1  # several requests in one model call
    assert sum(counted.calls) == len(inputs)
    for clip, result in zip(inputs, results, strict=True):
        np.testing.assert_allclose(result, engine.embed(clip[None])[0], atol=1e-5)


def test_a_bad_clip_fails_only_its_own_request(engine):
    faulty = FaultyEngine(engine)
    batcher = EmbedBatcher(max_batch=8, max_wait_s=1.0, workers=1)
    inputs = clips(5)
    inputs[2][0, 0, 0] = 1
    results = concurrently(batcher, faulty, inputs)
    batcher.close()
    assert isinstance(results[2], RuntimeError)
    for i in (0, 1, 3, 4):
        np.testing.assert_allclose(results[i], engine.embed(inputs[i][None])[0], atol=1e-5)


def test_a_request_alone_never_waits(engine):
    batcher = EmbedBatcher(max_batch=8, max_wait_s=30.0)
    started = time.monotonic()
    with batcher.incoming() as ticket:
        ticket.embed(engine, clips(1))
    assert time.monotonic() - started < 5  # far below the 30 s it would wait for company
    batcher.close()


def test_a_request_that_fails_before_submitting_stops_being_waited_for(engine):
    batcher = EmbedBatcher(max_batch=8, max_wait_s=30.0)
    with pytest.raises(ValueError, match="did not decode"), batcher.incoming():
        raise ValueError("an upload that did not decode")
    started = time.monotonic()
    batcher.embed(engine, clips(1))
    assert time.monotonic() - started < 5
    assert batcher.idle
    batcher.close()


def test_a_cancelled_clip_is_skipped(engine):
    slow = SlowEngine(engine)
    batcher = EmbedBatcher(max_batch=8, max_wait_s=0, workers=1)
    first = batcher._submit(slow, clips(1), announced=False)  # keeps the worker busy
    time.sleep(0.05)
    queued = batcher._submit(slow, clips(2, seed=3), announced=False)
    assert queued[0].cancel()
    assert queued[1].result(10).shape == engine.embed(clips(1)[0][None])[0].shape
    first[0].result(10)
    batcher.close()
    assert slow.calls == [1, 1]  # the cancelled clip never reached the model


def test_several_clips_go_narrow_side_by_side_with_the_same_results():
    """Two workers, the shipped default with two threads: a lone clip runs wide on the engine;
    a crowd is shared out to single-threaded copies, whose embeddings equal the engine's."""
    engine = EmbeddingEngine(DEFAULT_MODEL, device="cpu", threads=2)
    calls = []
    batcher = EmbedBatcher(
        max_batch=8, max_wait_s=1.0, workers=2, observe=lambda *c: calls.append(c)
    )
    inputs = clips(8, frames=12)
    results = concurrently(batcher, engine, inputs)
    lone = batcher.embed(engine, clips(1, frames=12, seed=5))
    batcher.close()
    narrow = [count for count, _, wide in calls[:-1] if not wide]
    assert sum(narrow) == 8  # the crowd went narrow, shared between the workers
    assert len(narrow) >= 2
    assert calls[-1][0] == 1
    assert calls[-1][2]
    for clip, result in zip(inputs, results, strict=True):
        np.testing.assert_allclose(result, engine.embed(clip[None])[0], atol=1e-5)
    np.testing.assert_allclose(
        lone[0], engine.embed(clips(1, frames=12, seed=5)[0][None])[0], atol=1e-5
    )


def test_a_model_whose_file_is_gone_still_answers_under_load(tmp_path):
    """Workers copy the live model from its file; an uploaded model's spool file can be gone.
    The workers then share the engine itself, and every request still gets its answer."""
    path = toy_model(tmp_path / "spooled.onnx")
    engine = EmbeddingEngine(path, device="cpu", threads=2)
    path.unlink()
    batcher = EmbedBatcher(max_batch=8, max_wait_s=1.0, workers=2)
    inputs = clips(6)
    results = concurrently(batcher, engine, inputs)
    batcher.close()
    for clip, result in zip(inputs, results, strict=True):
        np.testing.assert_allclose(result, engine.embed(clip[None])[0], atol=1e-5)
