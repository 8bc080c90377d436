"""training.experiment.spec: the experiment file's schema, checked before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import ConfigError, load_config
from training.data.subjects import parse_subjects
from training.experiment.spec import load_experiment

REPO = Path(__file__).resolve().parents[3]
BASE = "name: base\nmodel: {name: convlstm_fusion, channels: [8, 8, 16, 16]}\n"


def recipe(config: dict) -> dict:
    """A dumped config without what names it or where it writes."""
    config = {k: v for k, v in config.items() if k != "name"}
    config["run"] = {k: v for k, v in config["run"].items() if k != "out_dir"}
    return config


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_runs_are_the_base_with_defaults_and_overrides(tmp_path):
    path = write(
        tmp_path,
        """
name: lr
base: base.yaml
defaults: {optimizer: {lr: 0.05}, run: {iterations: 100}}
runs:
  - name: a
  - name: b
    overrides: {optimizer: {lr: 0.1}, run: {seed: 2}, model: {name: baseline}}
comparisons:
  - {title: a against b, runs: [a, b]}
""",
    )
    experiment = load_experiment(path, data_root="/data")
    a, b = (experiment.config(n, tmp_path / "out") for n in ("a", "b"))
    assert experiment.run_names == ["a", "b"]
    assert (a.optimizer.lr, a.run.seed, a.model.name, a.name) == (0.05, 0, "convlstm_fusion", "a")
    assert (b.optimizer.lr, b.run.seed, b.model.name) == (0.1, 2, "baseline")
    assert b.model.options == {"channels": [8, 8, 16, 16]}  # merged, not replaced
    assert a.run.iterations == b.run.iterations == 100
    assert b.run.out_dir == tmp_path / "out" / "runs" / "b"
    assert str(b.data.root) == "/data"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("runs: [{name: a}]\nrun: {iterations: 3}", "run\n  Extra inputs"),
        ("runs: [{name: a, overides: {}}]", "overides"),
        ("runs: [{name: a}, {name: a}]", "run 'a' is defined twice"),
        ("runs: [{name: a}]\ncomparisons: [{title: t, runs: [a, c]}]", "names run 'c'"),
        ("runs: [{name: 'a/../b'}]", "must start with a letter"),
        ("runs: []", "at least 1"),
        ("runs: [{name: a, overrides: {optimizer: {lr: -1}}}]", "run 'a': invalid config"),
        ("runs: [{name: a, overrides: {model: {name: baseline, temporal: lstm}}}]", "'baseline'"),
    ],
)
def test_bad_experiments_name_the_problem(tmp_path, body, complaint):
    path = write(tmp_path, f"name: x\nbase: base.yaml\n{body}\n")
    with pytest.raises(ConfigError, match=complaint):
        load_experiment(path)


def test_missing_base_is_named(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\nbase: nowhere.yaml\nruns: [{name: a}]\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_experiment(path)


def test_the_seed_campaign_file_is_valid():
    experiment = load_experiment(REPO / "configs" / "experiments" / "seed.yaml")
    configs = {n: experiment.config(n, Path("out")) for n in experiment.run_names}
    assert len(configs) == 9
    assert {c.data.val_subjects for c in configs.values()} == {"051-074"}  # 24 subjects
    assert {c.run.iterations for c in configs.values()} == {1500}
    at_lr01 = [n for n, c in configs.items() if c.optimizer.lr == 0.1]
    assert {(configs[n].model.name, configs[n].run.seed) for n in at_lr01} == {
        ("convlstm_fusion", 0),
        ("convlstm_fusion", 1),
        ("baseline", 0),
        ("baseline", 1),
    }
    arms = {(c.model.name, c.model.options.get("branches")) for c in configs.values()}
    assert arms == {("baseline", None), ("convlstm_fusion", None), ("convlstm_fusion", "lstm")}


def test_the_default_model_campaign_never_trains_on_its_validation_subjects():
    experiment = load_experiment(REPO / "configs" / "experiments" / "default_model.yaml")
    configs = {n: experiment.config(n, Path("out")) for n in experiment.run_names}
    assert set(configs) == {"old_recipe", "subjects_026", "new_default"}
    for config in configs.values():
        assert config.data.val_subjects == "051-074"  # 24 subjects, for figures and thresholds
        trained = set(parse_subjects(config.data.train_subjects))
        assert not trained & set(parse_subjects("051-074"))
    # the subjects run repeats seed's baseline_lr0.1_s0 on half the subjects, nothing else
    seed = load_experiment(REPO / "configs" / "experiments" / "seed.yaml")
    reference = seed.config("baseline_lr0.1_s0", Path("out")).model_dump()
    half = configs["subjects_026"].model_dump()
    assert half["data"].pop("train_subjects") == "001-026"
    assert reference["data"].pop("train_subjects") == "001-050"
    assert recipe(half) == recipe(reference)


def test_the_default_model_config_is_the_campaigns_new_default_and_the_shipped_recipe():
    standalone = load_config(REPO / "configs" / "default_model.yaml").model_dump(mode="json")
    experiment = load_experiment(REPO / "configs" / "experiments" / "default_model.yaml")
    campaign = experiment.config("new_default", Path("out")).model_dump(mode="json")
    assert recipe(standalone) == recipe(campaign)
    card = REPO / "models" / "weights" / "gaitlab-default.onnx.card.json"
    if card.is_file():  # the shipped weights were trained with exactly this recipe
        shipped = json.loads(card.read_text())["training"]["recipe"]
        assert recipe(shipped) == recipe(standalone)
