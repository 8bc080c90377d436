"""models.proof: every engine reproduces its card's fp32 reference embeddings, or gives way.

A deliberately bad variant (the shipped weights with noise added) must fail on any CPU; the
shipped variants must pass on this one (and, in tests/training/test_quantize.py, on an emulated
CPU without VNNI).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.card import ModelCard, card_path
from models.default import DEFAULT_INT8, DEFAULT_MODEL
from models.engine import EmbeddingEngine, read_card_file
from models.proof import (
    EngineDisagreesError,
    agreements,
    fp32_sibling,
    open_proven,
    prove,
    require_proof,
)
from models.reference import decode_clips, encode_clips, reference_clips

onnx = pytest.importorskip("onnx")
shipped = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="this checkout ships no model")


def write_model(source: Path, out: Path, card: ModelCard, noise: float = 0.0) -> Path:
    """``source``'s graph with ``card`` in its metadata and beside it; ``noise`` > 0 adds that
    share of random noise to every convolution's weights (a variant that is wrong anywhere)."""
    from onnx import numpy_helper

    from models.card import METADATA_KEY

    model = onnx.load(str(source))
    rng = np.random.default_rng(0)
    if noise:
        for init in model.graph.initializer:
            weights = numpy_helper.to_array(init)
            if weights.dtype == np.float32 and weights.ndim == 4:  # conv kernels
                noisy = weights + noise * weights.std() * rng.standard_normal(weights.shape)
                init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card.to_json()
    onnx.save(model, str(out))
    card_path(out).write_text(card.to_json())
    return out


@pytest.fixture(scope="module")
def cards() -> dict[str, ModelCard]:
    return {"fp32": read_card_file(DEFAULT_MODEL), "int8": read_card_file(DEFAULT_INT8)}


def test_reference_clips_are_fixed_walking_silhouettes():
    clips = reference_clips()
    assert clips.shape == (4, 24, 64, 44)
    assert clips.dtype == np.uint8
    assert set(np.unique(clips)) == {0, 255}
    assert np.array_equal(clips, reference_clips())  # the same every time
    moving = np.abs(np.diff(clips.astype(np.int16), axis=1)).sum(axis=(2, 3))
    assert (moving > 0).all()  # limbs move in every frame of every clip
    assert np.array_equal(decode_clips(encode_clips(clips), clips.shape), clips)


@shipped
def test_the_shipped_variants_prove_themselves_on_this_cpu(cards):
    for path in (DEFAULT_MODEL, DEFAULT_INT8):
        proof = require_proof(EmbeddingEngine(path, device="cpu"))
        assert proof.passed
        assert proof.agreement >= 0.999
        assert proof.clips == 4
    assert cards["int8"].reference == cards["fp32"].reference  # one reference: the fp32 model's
    assert cards["int8"].quantized_from == cards["fp32"].version
    assert cards["int8"].quantization.startswith("u8s8-reduce-range")


@shipped
def test_a_bad_int8_variant_falls_back_to_its_fp32_model(cards, tmp_path):
    fp32 = write_model(DEFAULT_MODEL, tmp_path / "m.onnx", cards["fp32"])
    bad = write_model(DEFAULT_MODEL, tmp_path / "m.int8.onnx", cards["int8"], noise=0.3)
    engine = EmbeddingEngine(bad, device="cpu")
    proof = prove(engine)
    assert proof.passed is False
    assert proof.agreement < 0.99
    assert "DISAGREES" in proof.detail
    with pytest.raises(EngineDisagreesError, match="use the fp32 model"):
        require_proof(engine)
    assert fp32_sibling(bad, engine.card) == fp32

    serving = open_proven(bad)
    assert serving.engine.path == fp32
    assert serving.proof.passed
    assert serving.refused.version == cards["int8"].version
    assert serving.refused.passed is False
    assert f"serving {cards['fp32'].version} (fp32) instead" in serving.fallback_reason
    assert serving.public()["refused"]["agreement"] == serving.refused.agreement


@shipped
def test_nothing_to_fall_back_to_refuses(cards, tmp_path):
    bad_fp32 = write_model(DEFAULT_MODEL, tmp_path / "m.onnx", cards["fp32"], noise=0.3)
    with pytest.raises(EngineDisagreesError, match="no fp32 model beside it"):
        open_proven(bad_fp32)
    bad_int8 = write_model(DEFAULT_MODEL, tmp_path / "m.int8.onnx", cards["int8"], noise=0.3)
    with pytest.raises(EngineDisagreesError, match="DISAGREES"):
        open_proven(bad_int8)  # its fp32 sibling fails too
    (tmp_path / "m.onnx").unlink()
    card_path(tmp_path / "m.onnx").unlink()
    with pytest.raises(EngineDisagreesError, match="no fp32 model beside it"):
        open_proven(bad_int8)


@shipped
def test_a_sibling_of_another_version_is_not_a_fallback(cards, tmp_path):
    other = cards["fp32"].model_copy(update={"version": "baseline-000000000000"})
    write_model(DEFAULT_MODEL, tmp_path / "m.onnx", other)
    bad = write_model(DEFAULT_MODEL, tmp_path / "m.int8.onnx", cards["int8"], noise=0.3)
    assert fp32_sibling(bad, read_card_file(bad)) is None


@shipped
def test_a_card_without_reference_is_served_unproven(cards, tmp_path):
    old = write_model(
        DEFAULT_MODEL, tmp_path / "old.onnx", cards["fp32"].model_copy(update={"reference": None})
    )
    serving = open_proven(old)
    assert serving.proof.passed is None
    assert "unproven" in serving.proof.detail
    assert serving.refused is None


@shipped
def test_agreement_is_the_services_score(cards):
    expected = cards["fp32"].reference.expected()
    assert np.allclose(agreements(expected, expected), 1, atol=1e-6)
    flipped = expected.copy()
    flipped[0, :, :4] *= -1  # half the parts point the other way: mean cosine 0
    assert agreements(flipped, expected)[0] == pytest.approx(0, abs=1e-6)


def test_a_copied_model_keeps_its_proof(tmp_path):
    if not DEFAULT_MODEL.is_file():
        pytest.skip("this checkout ships no model")
    shutil.copy(DEFAULT_INT8, tmp_path / "x.int8.onnx")  # card inside the file, none beside it
    assert prove(EmbeddingEngine(tmp_path / "x.int8.onnx", device="cpu")).passed
