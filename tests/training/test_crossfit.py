"""training.crossfit: a card for a model trained on every subject, from fold models' cards and
their own embeddings (made up here: people as random centres, walks scattered around them)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from models.card import CrossFit, EmbeddingContract, ModelCard, TrainingRecord
from training.calibration import calibrate
from training.crossfit import CrossFitError, Fold, card_from_folds, cross_fit, mean_thresholds
from training.export import validate

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "cl-01")
VIEWS = ("000", "090", "180")


def walks(first: int, people: int, seed: int, spread: float = 0.8):
    """Embeddings [n, 32, 2] of subjects ``first`` … ``first + people - 1``, every condition and
    view, and their labels."""
    rng = np.random.default_rng(seed)
    feats, subjects, conditions, views = [], [], [], []
    for person in range(first, first + people):
        centre = rng.normal(size=(32, 2))
        for condition in CONDITIONS:
            for view in VIEWS:
                feats.append(centre + rng.normal(0, spread, (32, 2)))
                subjects.append(f"{person:03d}")
                conditions.append(condition)
                views.append(view)
    return np.stack(feats).astype(np.float32), *map(np.array, (subjects, conditions, views))


def fold(first: int, seed: int, trained_on: str = "001-030") -> Fold:
    feats, subjects, conditions, views = walks(first, 10, seed)
    held = f"{first:03d}-{first + 9:03d}"
    found = calibrate(feats, subjects, conditions, views, held)
    labels = SimpleNamespace(subjects=subjects, conditions=conditions, views=views)
    card = ModelCard(
        name="fold",
        version=f"fold-{first:03d}",
        net="baseline",
        net_options={"parts": 2},
        embedding=EmbeddingContract(shape=["batch", 32, 2]),
        training=TrainingRecord(
            subjects=trained_on, config_name="fold", iterations=1, wall_time_s=1, recipe={}
        ),
        validation=validate(feats, labels, held, "this model, on held-out subjects"),
        thresholds=found.thresholds,
        calibration=found.record,
        identification=found.identification,
    )
    return Fold(card, feats, subjects, conditions, views)


@pytest.fixture(scope="module")
def folds() -> list[Fold]:
    return [fold(1, 1), fold(11, 2), fold(21, 3)]


def final_card(folds: list[Fold], trained_on: str = "001-030") -> ModelCard:
    return folds[0].card.model_copy(
        update={
            "version": "all-subjects",
            "training": folds[0].card.training.model_copy(update={"subjects": trained_on}),
        }
    )


def test_transfers_are_measured_both_ways_and_leaving_one_out(folds):
    record = cross_fit(folds)
    assert [f.held_out for f in record.folds] == ["001-010", "011-020", "021-030"]
    pairs = {(tuple(t.derived_from), t.measured_on) for t in record.pairwise}
    assert len(pairs) == 6
    assert all(
        len(t.derived_from) == 1 and t.measured_on not in t.derived_from for t in record.pairwise
    )
    for transfer in record.leave_one_out:
        assert len(transfer.derived_from) == 2
        assert transfer.measured_on not in transfer.derived_from
        assert set(transfer.far) == {"0.01", "0.001"}
        assert all(0 <= rate <= 1 for rate in transfer.far.values())
        assert {(g.subjects, g.views) for g in transfer.galleries} == {
            (s, k) for s in (5, 9) for k in ("all", "one")
        }
    own = record.pairwise[0]  # fold 1's own 1 % threshold on fold 2: near 1 %, not 50 %
    assert own.far["0.01"] < 0.1


def test_the_card_s_decisions_are_the_cross_fitting_it_describes(folds):
    card = card_from_folds(final_card(folds), folds)
    record = card.cross_fit
    expected = mean_thresholds([f.card for f in folds])
    assert {t.far: t.score for t in card.thresholds} == expected
    for far, score in expected.items():
        assert score == pytest.approx(np.mean([f.thresholds[str(far)] for f in record.folds]))
    one = card.threshold_at(0.01)
    measured = [t.far["0.01"] for t in record.leave_one_out]
    assert one.measured_far == pytest.approx(np.mean(measured))
    assert one.far_interval == (min(measured), max(measured))
    assert card.calibration is None  # no subjects of its own
    assert card.validation.source.startswith("cross-validated")
    assert card.validation.rank1["euc"]["NM"] == pytest.approx(
        np.mean([f.rank1["euc"]["NM"] for f in record.folds]), abs=0.01
    )
    # the curves: at each fold's grid score, the mean of the folds' stranger rates
    model = card.identification.model()
    curves = [f.identification.model() for f in record.folds]
    for views in (1, 3, 11):
        for score in record.folds[0].identification.curves[views - 1].scores[::7]:
            mean = np.mean([c.rate(score, views) for c in curves])
            assert model.rate(score, views) == pytest.approx(mean, rel=1e-6)
    assert model.threshold(0.01, {11: 20}) > model.threshold(0.01, {11: 5})


def test_folds_that_cannot_stand_in_are_refused(folds):
    with pytest.raises(CrossFitError, match="share held-out subjects"):
        cross_fit([folds[0], fold(5, 4)])
    with pytest.raises(CrossFitError, match="did not train on"):
        card_from_folds(final_card(folds, trained_on="001-020"), folds)
    with pytest.raises(CrossFitError, match="two folds"):
        cross_fit(folds[:1])


@pytest.fixture(scope="module")
def fold_files(tmp_path_factory):
    """Exported models on a drawn tree of 001–012: two folds, each calibrated and validated on
    the six subjects it left out, and a model 'trained' on all twelve (small real ONNX nets:
    ``tests.helpers.toy_model``)."""
    from models.engine import EmbeddingEngine
    from tests.helpers import toy_model
    from tests.synthetic_casia import write_synthetic_tree
    from training.data.cache import SilhouetteCache
    from training.data.subjects import parse_subjects
    from training.embedding import embed_cache_onnx
    from training.export import write_with_card
    from training.recalibrate import recalibrate

    folder = tmp_path_factory.mktemp("crossfit-files")
    tree = write_synthetic_tree(folder / "tree", tuple(f"{i:03d}" for i in range(1, 13)))

    def exported(name: str, trained_on: str, held_out: str | None) -> Path:
        path = toy_model(folder / f"{name}.onnx", version=name)
        card = EmbeddingEngine(path, device="cpu", warmup=False).card
        training = card.training.model_copy(update={"subjects": trained_on})
        write_with_card(path, path, card.model_copy(update={"training": training}))
        if held_out is not None:
            card = recalibrate(path, tree, held_out, progress=False)
            cache = SilhouetteCache.load(tree, parse_subjects(held_out), progress=False)
            engine = EmbeddingEngine(path, device="cpu", warmup=False)
            feats = embed_cache_onnx(engine, cache, progress=False)
            measured = validate(feats, cache, held_out, "this model, on held-out subjects")
            write_with_card(path, path, card.model_copy(update={"validation": measured}))
        return path

    folds = [exported("fold-a", "007-012", "001-006"), exported("fold-b", "001-006", "007-012")]
    return tree, folds, exported("all", "001-012", None), exported


def test_the_command_writes_the_card_from_the_exported_folds(fold_files, capsys):
    from gaitlab.cli import main
    from models.engine import EmbeddingEngine
    from training.crossfit import CROSS_VALIDATED

    tree, folds, final, _ = fold_files
    before = EmbeddingEngine(final, device="cpu", warmup=False)
    clip = np.zeros((12, 64, 44), np.uint8)
    clip[:, 10:60, 15:30] = 255
    expected = before.embed_many([clip])
    fold_cards = [EmbeddingEngine(f, device="cpu", warmup=False).card for f in folds]

    assert main(["crossfit", str(final), "--folds", *map(str, folds), "--data", str(tree)]) == 0
    printed = capsys.readouterr().out
    assert "from 2 folds" in printed
    assert "leave one out" in printed

    after = EmbeddingEngine(final, device="cpu", warmup=False)
    card = after.card
    assert card.version == "all"  # weights unchanged: a gallery embedded with it stays valid
    np.testing.assert_array_equal(after.embed_many([clip]), expected)
    record = card.cross_fit
    assert [f.held_out for f in record.folds] == ["001-006", "007-012"]
    assert {(t.derived_from[0], t.measured_on) for t in record.pairwise} == {
        ("fold-a", "fold-b"),
        ("fold-b", "fold-a"),
    }
    assert [t.measured_on for t in record.leave_one_out] == ["fold-a", "fold-b"]
    for threshold in card.thresholds:
        folds_scores = [c.threshold_at(threshold.far).score for c in fold_cards]
        assert threshold.score == pytest.approx(np.mean(folds_scores))
    assert card.validation.source == CROSS_VALIDATED
    assert card.validation.subject_count == 12
    assert card.calibration is None
    assert card.identification is not None


def test_without_a_model_the_command_measures_the_folds_and_writes_no_model(
    fold_files, tmp_path, capsys
):
    from gaitlab.cli import main

    tree, folds, _, _ = fold_files
    stamps = [f.stat().st_mtime_ns for f in folds]
    out = tmp_path / "crossfit.json"
    args = ["crossfit", "--folds", *map(str, folds), "--data", str(tree), "--json", str(out)]
    assert main(args) == 0
    assert "nothing written" in capsys.readouterr().out
    assert [f.stat().st_mtime_ns for f in folds] == stamps
    record = CrossFit.model_validate_json(out.read_text())
    assert len(record.pairwise) == 2
    assert all(t.galleries for t in record.pairwise)  # identification decisions measured too


def test_the_command_refuses_a_model_that_did_not_train_on_the_folds_subjects(fold_files, capsys):
    from gaitlab.cli import main

    tree, folds, _, exported = fold_files
    partial = exported("partial", "001-009", None)
    code = main(["crossfit", str(partial), "--folds", *map(str, folds), "--data", str(tree)])
    assert code == 2
    assert "which this model did not train on" in capsys.readouterr().err
