"""training.export + models.engine on real clips: ONNX equals PyTorch, the card round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gaitlab.cli import main
from models.card import METADATA_KEY, OWN_WEIGHTS, ModelCard, card_path
from models.engine import EmbeddingEngine
from models.proof import prove
from tests.training.test_trainer import tiny_config
from training.checkpoint import model_from_checkpoint
from training.config import TrainConfig
from training.data.cache import SilhouetteCache
from training.export import (
    ExportError,
    OnnxEmbedder,
    export_checkpoint,
    int8_path,
    quantize_exported,
    write_with_card,
)
from training.trainer import train

pytestmark = [pytest.mark.casia, pytest.mark.slow]


@pytest.mark.parametrize("frames", [1, 7, 30, 120])
@pytest.mark.parametrize("batch", [1, 4])
def test_engine_equals_pytorch(exported, training_tree, frames, batch):
    checkpoint, result = exported
    wrapper = OnnxEmbedder(model_from_checkpoint(checkpoint)).eval()
    engine = EmbeddingEngine(result.path, device="cpu")
    cache = SilhouetteCache.load(training_tree, ["065", "066"], progress=False)
    long = np.flatnonzero(cache.lengths >= frames)
    clips = np.stack([cache.sequence(i)[:frames] for i in np.resize(long, batch)])
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(clips)).numpy()
    got = engine.embed(clips)
    assert got.shape == (batch, 16, 8)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def views_of(tree) -> int:
    """Views of a tree's subject 065 (11 in CASIA-B, 3 in the synthetic tree)."""
    return len(list((tree / "065" / "nm-01").iterdir()))


def test_parity_report_and_card(exported, training_tree):
    _, result = exported
    assert result.parity.passed
    assert result.parity.cases == 8
    card = result.card
    assert card.net == "convlstm_fusion"
    assert card.version.startswith("convlstm_fusion-")
    assert card.embedding.shape == ["batch", 16, 8]
    assert card.input.shape == ["batch", "frames", 64, 44]
    assert card.training.iterations == 10
    assert "research" in card.licence
    assert set(card.validation.rank1) == {"euc", "cos"}
    assert [t.far for t in card.thresholds] == [0.01, 0.001]
    strict, loose = card.thresholds[1], card.thresholds[0]
    assert strict.score >= loose.score
    assert strict.measured_far <= 0.001
    assert loose.measured_far <= 0.01
    assert 0 <= strict.tar <= loose.tar <= 1
    assert set(loose.tar_per_condition) == {"NM", "BG", "CL"}
    # what the card measured, and on what: its own weights, two unseen subjects, across views
    assert card.validation.subject_count == 2
    assert card.validation.gallery_sequences == 2 * 4 * views_of(training_tree)
    views = views_of(training_tree)
    assert card.validation.probe_sequences == {"NM": 4 * views, "BG": 4 * views, "CL": 4 * views}
    calibration = card.calibration
    assert calibration.source == OWN_WEIGHTS
    assert (calibration.subjects, calibration.subject_count) == ("065-066", 2)
    # probes of one view never meet gallery sequences of that view: each of the 2 × 6 × v
    # probes meets the 2 × 4 × (v - 1) gallery walks of the other views, half of them its own
    probes, gallery = 2 * 6 * views, 2 * 4 * (views - 1)
    assert calibration.genuine_pairs + calibration.impostor_pairs == probes * gallery
    assert calibration.genuine_pairs == probes * gallery // 2


def test_card_round_trips_through_the_file_and_the_side_car(exported):
    _, result = exported
    engine = EmbeddingEngine(result.path, device="cpu")
    assert engine.card == result.card
    assert engine.version == result.card.version
    assert ModelCard.from_json(card_path(result.path).read_text()) == result.card
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert json.loads(metadata[METADATA_KEY])["version"] == result.card.version


def test_export_refuses_validation_on_training_subjects(exported, tmp_path):
    checkpoint, _ = exported
    with pytest.raises(ExportError, match="trained on"):
        export_checkpoint(checkpoint, tmp_path / "m.onnx", subjects="001-004", progress=False)
    assert not (tmp_path / "m.onnx").exists()


def test_export_command(exported, tmp_path, capsys):
    checkpoint, _ = exported
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "parity: 8 cases" in printed
    assert "  threshold at FAR 0.01" in printed
    assert (tmp_path / "m.onnx.card.json").exists()


def test_eval_of_the_onnx_model_matches_the_checkpoint(exported, training_tree, tmp_path):
    checkpoint, result = exported
    reports = {}
    for name, model in (("pt", checkpoint), ("onnx", result.path)):
        out = tmp_path / f"{name}.json"
        args = ["eval", "--model", str(model), "--data", str(training_tree)]
        assert main([*args, "--subjects", "065-066", "--json", str(out)]) == 0
        reports[name] = json.loads(out.read_text())
    for metric in ("euc", "cos"):
        for probe_set in ("NM", "BG", "CL"):
            assert reports["onnx"][metric]["mean"][probe_set] == pytest.approx(
                reports["pt"][metric]["mean"][probe_set], abs=0.5
            )


def test_open_set_eval_at_the_cards_thresholds_measures_what_the_card_says(
    exported, training_tree, tmp_path
):
    _, result = exported
    out = tmp_path / "open.json"
    args = ["eval", "--model", str(result.path), "--data", str(training_tree), "--open-set"]
    assert main([*args, "--subjects", "065-066", "--json", str(out), "--splits", "4"]) == 0
    report = json.loads(out.read_text())["open_set"]
    given = {point["label"]: point for point in report["verification"]["given"]}
    for threshold in result.card.thresholds:
        measured = given[f"card {100 * threshold.far:g} %"]
        assert measured["false_rate"]["all"] == pytest.approx(threshold.measured_far)
        assert measured["true_rate"]["all"] == pytest.approx(threshold.tar)
    identification = report["identification"]
    assert (identification["enrolled_subjects"], identification["impostor_subjects"]) == (1, 1)
    assert (tmp_path / "open_open_set.png").exists()


def test_int8_variant_has_its_own_measured_card(exported):
    _, result = exported
    engine = EmbeddingEngine(result.int8_path, device="cpu")
    card = engine.card
    assert card.variant == "int8"
    assert card.version.startswith(f"{result.card.version}-int8-")  # + the int8 file's own hash
    assert card.quantized_from == result.card.version
    assert card.quantization.startswith("u8s8-reduce-range")
    assert card.reference == result.card.reference  # the fp32 model's embeddings, for both
    assert card.reference.bound == 0.99
    assert prove(engine).passed
    assert prove(EmbeddingEngine(result.path, device="cpu")).passed
    assert card.cpu_default is None  # 2 validation subjects cannot make its case
    assert card.calibration.genuine_pairs == result.card.calibration.genuine_pairs
    assert card.thresholds != result.card.thresholds  # measured on its own weights
    assert [t.far for t in card.thresholds] == [0.01, 0.001]
    clips = np.zeros((2, 30, 64, 44), np.uint8)
    clips[:, :, 10:50, 15:30] = 255
    fp32 = EmbeddingEngine(result.path, device="cpu").embed(clips)
    int8 = engine.embed(clips)
    cosine = (
        (fp32 * int8).sum((1, 2))
        / np.linalg.norm(fp32, axis=(1, 2))
        / np.linalg.norm(int8, axis=(1, 2))
    )
    assert cosine.min() > 0.9  # quantised, not a different model


def test_a_model_trained_on_every_subject_borrows_its_siblings_validation(
    exported, training_tree, tmp_path
):
    sibling, sibling_result = exported  # trained on 001–004, validated on 065–066
    everything = tiny_config(training_tree, tmp_path / "all", iterations=10)
    everything["data"]["train_subjects"] = "001-004,065-066"
    full = train(TrainConfig.model_validate(everything), progress=False)

    with pytest.raises(ExportError, match="trained on"):
        export_checkpoint(full, tmp_path / "m.onnx", subjects="065-066", progress=False)

    result = export_checkpoint(
        full, tmp_path / "m.onnx", subjects="065-066", validation_from=sibling, progress=False
    )
    card = result.card
    assert "sibling" in card.validation.source
    assert "001-004" in card.validation.source
    assert card.training.subjects == "001-004,065-066"
    assert card.validation.rank1 == sibling_result.card.validation.rank1
    # the sibling's thresholds would not keep their rate on these weights: none are borrowed
    assert card.thresholds == []
    assert card.calibration is None
    assert card.version != sibling_result.card.version

    # the sibling's exported cards serve as well as its checkpoint (no checkpoint needs keeping)
    from_cards = export_checkpoint(
        full,
        tmp_path / "c.onnx",
        int8=True,
        validation_from=card_path(sibling_result.path),
        progress=False,
    )
    assert from_cards.card.validation.rank1 == sibling_result.card.validation.rank1
    assert from_cards.card.thresholds == from_cards.int8_card.thresholds == []
    assert "sibling" in from_cards.int8_card.validation.source

    other = tiny_config(training_tree, tmp_path / "other", iterations=12)
    different = train(TrainConfig.model_validate(other), progress=False)
    with pytest.raises(ExportError, match=r"run\.iterations"):
        export_checkpoint(
            full,
            tmp_path / "x.onnx",
            subjects="065-066",
            validation_from=different,
            progress=False,
        )


def test_an_int8_variant_below_the_proof_bound_is_not_written(exported, tmp_path):
    checkpoint, _ = exported  # no int8 variant agrees with fp32 to 1.0 exactly
    out = tmp_path / "strict.onnx"
    with pytest.raises(ExportError, match=r"disagrees with fp32 on the reference clips"):
        export_checkpoint(checkpoint, out, int8=True, progress=False, proof_bound=1.0)
    assert not out.exists()
    assert not int8_path(out).exists()
    with pytest.raises(ExportError, match=r"proof bound must be in \[0.99, 1\]"):
        export_checkpoint(checkpoint, out, int8=True, progress=False, proof_bound=0.9)


def test_quantize_an_exported_model_gives_its_int8_variant_a_card_of_its_own(
    exported, training_tree, tmp_path
):
    _, result = exported
    model = tmp_path / "model.onnx"
    bare = result.card.model_copy(update={"reference": None})  # exported before proofs
    write_with_card(result.path, model, bare)
    fp32_card, int8_card = quantize_exported(model, training_tree, progress=False, proof_bound=0.99)
    assert fp32_card.reference is not None  # added to the fp32 card, version unchanged
    assert EmbeddingEngine(model, device="cpu").card == fp32_card
    assert fp32_card.version == result.card.version
    int8 = EmbeddingEngine(int8_path(model), device="cpu")
    assert int8.card == int8_card
    assert int8_card.variant == "int8"
    assert int8_card.quantized_from == fp32_card.version
    assert int8_card.validation.subjects == "065-066"
    assert int8_card.thresholds
    assert prove(int8).passed
    with pytest.raises(ExportError, match="trained on"):
        quantize_exported(model, training_tree, subjects="001-002", progress=False)
