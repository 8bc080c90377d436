"""models.engine: contract checks and provider choice, on small ONNX graphs built here."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models.card import METADATA_KEY
from models.engine import EmbeddingEngine, ModelContractError


def reduce_model(path, dtype=TensorProto.UINT8, dims=("batch", "frames", 64, 44), card=None):
    """A tiny stand-in embedding model: [n, s, 64, 44] → mean over frames → [n, 64, 44]."""
    sils = helper.make_tensor_value_info("silhouettes", dtype, list(dims))
    out = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 64, 44])
    nodes = [
        helper.make_node("Cast", ["silhouettes"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["embeddings"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "tiny", [sils], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if card is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, card
    onnx.save(model, str(path))
    return path


def test_embeds_with_the_cpu_provider(tmp_path):
    engine = EmbeddingEngine(reduce_model(tmp_path / "m.onnx"), device="cpu", threads=1)
    clips = np.random.default_rng(0).integers(0, 256, (3, 5, 64, 44), dtype=np.uint8)
    np.testing.assert_allclose(engine.embed(clips), clips.mean(1), rtol=1e-6)
    assert engine.provider == "CPUExecutionProvider"
    assert engine.device == "cpu"
    assert engine.card is None
    assert engine.version == "unversioned:m.onnx"


def test_embed_many_keeps_order_across_lengths(tmp_path):
    engine = EmbeddingEngine(reduce_model(tmp_path / "m.onnx"), device="cpu")
    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 256, (n, 64, 44), dtype=np.uint8) for n in (3, 9, 3, 1, 9)]
    feats = engine.embed_many(clips, batch_size=1)
    for clip, feat in zip(clips, feats, strict=True):
        np.testing.assert_allclose(feat, clip.mean(0), rtol=1e-6)


def test_embed_many_reports_each_batch(tmp_path):
    engine = EmbeddingEngine(reduce_model(tmp_path / "m.onnx"), device="cpu")
    clips = [np.zeros((n, 64, 44), np.uint8) for n in (3, 9, 3, 3, 9)]
    batches = []
    engine.embed_many(clips, batch_size=2, on_batch=batches.append)
    assert batches == [2, 1, 2]  # three of length 3: 2 + 1; two of length 9: 2


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="checks the fallback where CUDA is absent",
)
def test_cuda_requested_but_absent_falls_back_and_says_so(tmp_path):
    engine = EmbeddingEngine(reduce_model(tmp_path / "m.onnx"), device="cuda")
    assert engine.device == "cpu"
    assert "CUDA was requested" in engine.fallback_reason
    assert EmbeddingEngine(reduce_model(tmp_path / "m.onnx"), device="cpu").fallback_reason is None


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"dtype": TensorProto.FLOAT}, "uint8"),
        ({"dims": ("batch", "frames", 64, 64)}, "64, 44"),
        ({"dims": (1, 30, 64, 44)}, "dynamic"),
    ],
)
def test_wrong_input_contract_is_refused(tmp_path, kwargs, complaint):
    with pytest.raises(ModelContractError, match=complaint):
        EmbeddingEngine(reduce_model(tmp_path / "m.onnx", **kwargs), device="cpu")


def test_corrupt_file_and_bad_card_are_refused(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07not a model")
    with pytest.raises(ModelContractError, match="not a loadable ONNX model"):
        EmbeddingEngine(broken)
    with pytest.raises(ModelContractError, match="model card"):
        EmbeddingEngine(reduce_model(tmp_path / "m.onnx", card="{not json"), device="cpu")
    with pytest.raises(FileNotFoundError):
        EmbeddingEngine(tmp_path / "missing.onnx")


def test_bad_clips_are_refused(tmp_path):
    engine = EmbeddingEngine(reduce_model(tmp_path / "m.onnx"), device="cpu")
    with pytest.raises(ValueError, match=r"\[n, frames, 64, 44\]"):
        engine.embed(np.zeros((2, 64, 44), np.uint8))
    with pytest.raises(ValueError, match="frames"):
        engine.embed(np.zeros((1, 0, 64, 44), np.uint8))


def test_spinning_threads_stop_when_a_call_returns(tmp_path):
    """Spinning speeds up one call; after it the threads must not burn a core the rest of the
    process needs (left spinning, they took 3/4 of the wall time of calls 5 ms apart here)."""
    import resource
    import time

    from tests.helpers import toy_model

    engine = EmbeddingEngine(toy_model(tmp_path / "toy.onnx"), "cpu", threads=2, spin=True)
    clip = np.zeros((1, 30, 64, 44), np.uint8)

    def cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    cpu_before, wall_before = cpu_s(), time.perf_counter()
    for _ in range(100):
        engine.embed(clip)
        time.sleep(0.005)
    busy = (cpu_s() - cpu_before) / (time.perf_counter() - wall_before)
    assert busy < 0.5, f"the process kept {busy:.0%} of a core busy between calls"
