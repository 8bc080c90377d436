"""training.recalibrate (``gaitlab calibrate``) on a real exported model and real clips."""

from __future__ import annotations

import shutil

import onnx
import pytest

from gaitlab.cli import main
from models.card import METADATA_KEY, OWN_WEIGHTS, ModelCard, card_path
from models.engine import EmbeddingEngine
from training.export import ExportError
from training.recalibrate import recalibrate

pytestmark = [pytest.mark.casia, pytest.mark.slow]


def test_calibrating_on_the_export_subjects_reproduces_the_exports_thresholds(
    exported, training_tree, tmp_path
):
    _, result = exported
    copy = shutil.copy(result.path, tmp_path / "model.onnx")
    card = recalibrate(copy, training_tree, "065-066", progress=False)
    # same weights, same subjects, same pairs: the same thresholds as the export measured
    assert [t.score for t in card.thresholds] == [t.score for t in result.card.thresholds]
    assert card.calibration == result.card.calibration
    assert card.version == result.card.version  # weights untouched: galleries stay valid
    assert EmbeddingEngine(copy, device="cpu").card == card
    assert ModelCard.from_json(card_path(copy).read_text()) == card
    keys = [p.key for p in onnx.load(str(copy)).metadata_props]
    assert keys.count(METADATA_KEY) == 1


def test_another_far_and_another_file(exported, training_tree, tmp_path):
    _, result = exported
    out = tmp_path / "recalibrated.onnx"
    args = ["calibrate", str(result.path), "--data", str(training_tree)]
    assert main([*args, "--subjects", "065-066", "--far", "0.05", "--out", str(out)]) == 0
    card = EmbeddingEngine(out, device="cpu").card
    # the service's decision rate (1 %) is always kept: requests without a threshold need it
    assert [t.far for t in card.thresholds] == [0.05, 0.01]
    assert card.thresholds[0].measured_far <= 0.05
    assert card.thresholds[0].score < card.thresholds[1].score  # 5 % lets more in
    assert card.thresholds[1] == result.card.thresholds[0]
    assert card.calibration.source == OWN_WEIGHTS
    assert (card.calibration.subjects, card.calibration.subject_count) == ("065-066", 2)
    assert EmbeddingEngine(result.path, device="cpu").card == result.card  # left alone


def test_one_subject_has_no_impostors(exported, training_tree, capsys):
    _, result = exported
    args = ["calibrate", str(result.path), "--data", str(training_tree), "--subjects", "066"]
    assert main(args) == 2
    assert "impostor" in capsys.readouterr().err


def test_subjects_the_model_trained_on_are_refused(exported, training_tree, tmp_path, capsys):
    _, result = exported
    with pytest.raises(ExportError, match="trained on"):
        recalibrate(result.path, training_tree, "003-004,065", progress=False)
    args = ["calibrate", str(result.path), "--data", str(training_tree), "--subjects", "001"]
    assert main(args) == 2
    assert "trained on" in capsys.readouterr().err
    # other people reusing the IDs (another dataset): the caller says so, and it calibrates
    out = tmp_path / "other.onnx"
    card = recalibrate(
        result.path, training_tree, "001-002", out=out, progress=False, other_people=True
    )
    assert card.calibration.subjects == "001-002"
    assert card.thresholds[0].far_interval is None  # 2 subjects: too few for an interval
    args += ["--other-people", "--out", str(tmp_path / "other-cli.onnx")]
    assert main(args) == 2  # one subject: refused for want of impostors, not for its ID
    assert "impostor" in capsys.readouterr().err
