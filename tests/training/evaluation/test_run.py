"""``gaitlab eval`` end to end on real CASIA-B subjects with a briefly trained tiny net."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaitlab.cli import main
from tests.helpers import toy_model, with_reference
from tests.training.test_trainer import tiny_config
from training.config import TrainConfig
from training.evaluation.protocol import evaluate
from training.evaluation.report import load_embeddings
from training.trainer import train

pytestmark = [pytest.mark.casia, pytest.mark.slow]


@pytest.fixture(scope="module")
def checkpoint(training_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-run")
    config = TrainConfig.model_validate(tiny_config(training_tree, out, iterations=20))
    return train(config, progress=False)


def run_eval(checkpoint, tree, subjects: str, *extra: str) -> int:
    args = ["eval", "--model", str(checkpoint), "--data", str(tree), "--subjects", subjects]
    return main([*args, *extra])


def test_eval_writes_tables_json_heatmaps_and_embeddings(
    checkpoint, training_tree, tmp_path, capsys
):
    report_path, npz = tmp_path / "eval.json", tmp_path / "feats.npz"
    extra = ("--json", str(report_path), "--save-embeddings", str(npz))
    assert run_eval(checkpoint, training_tree, "001-004,065-066", *extra) == 0
    printed = capsys.readouterr().out
    assert "metric euc" in printed
    assert "metric cos" in printed
    report = json.loads(report_path.read_text())
    assert report["sequences"] == len(list(training_tree.glob("*/*/*/*.pkl")))
    for metric in ("euc", "cos"):
        means = report[metric]["mean"]
        # six subjects: chance is 16.7 %; even a net trained for 20 tiny steps is well above
        # it, and normal walking is the easiest probe set
        assert 30 < means["NM"] <= 100  # measured: euc NM 35.8 / BG 31.7 / CL 22.8
        assert means["NM"] >= means["CL"]
        assert (tmp_path / f"eval_{metric}.png").stat().st_size > 10_000

    feats, subjects, conds, views = load_embeddings(npz)
    assert feats.shape == (report["sequences"], 16, 8)
    recomputed = evaluate(feats, subjects, conds, views, metric="euc")
    assert recomputed.mean["NM"] == pytest.approx(report["euc"]["mean"]["NM"])
    assert set(np.unique(subjects)) == {"001", "002", "003", "004", "065", "066"}

    # the saved embeddings evaluate again without the model or the data, open set included
    again = tmp_path / "again.json"
    args = ["eval", "--embeddings", str(npz), "--json", str(again), "--open-set"]
    assert main([*args, "--splits", "3"]) == 0
    saved = json.loads(again.read_text())
    assert saved["embeddings"] == str(npz)
    for metric in ("euc", "cos"):
        assert saved[metric]["mean"] == pytest.approx(report[metric]["mean"])
    assert saved["open_set"]["verification"]["subjects"] == 6
    assert saved["open_set"]["identification"]["impostor_subjects"] == 3
    assert (tmp_path / "again_open_set.png").exists()


def test_eval_reports_bad_input(checkpoint, training_tree, capsys):
    assert run_eval(checkpoint, training_tree, "LT") == 2
    assert "LT-train or -test" in capsys.readouterr().err
    assert run_eval(checkpoint, training_tree, "100-101") == 2
    assert "no sequences" in capsys.readouterr().err
    assert main(["eval", "--model", str(checkpoint)]) == 2
    assert "--data is needed" in capsys.readouterr().err
    assert run_eval(checkpoint, training_tree, "065", "--embeddings", "x.npz") == 2
    assert "--embeddings replaces" in capsys.readouterr().err
    assert run_eval(checkpoint, training_tree, "065", "--threshold", "0.9") == 2
    assert "add --open-set" in capsys.readouterr().err


def test_eval_refuses_a_model_that_disagrees_with_its_reference_here(tmp_path, capsys):
    """Figures of an engine that is wrong on this CPU would mislead: eval stops before any
    data is read (no CASIA-B needed)."""
    bad = with_reference(toy_model(tmp_path / "toy.onnx"), wrong=True)
    args = ["eval", "--model", str(bad), "--data", str(tmp_path / "absent"), "--subjects", "065"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "DISAGREES with its fp32 reference" in error
    assert "use the fp32 model" in error
