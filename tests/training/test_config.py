"""training.config: presets validate; typos and bad values are rejected with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, TrainConfig, load_config
from training.data.subjects import parse_subjects

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_presets_are_valid(path):
    config = load_config(path)
    assert config.model.name in ("convlstm_fusion", "baseline")
    assert config.optimizer.lr in (0.05, 0.1)  # the rates the seed campaign found stable
    # every preset selects on at least 24 subjects it never trains on (12 overstated CL by 17)
    validation = set(parse_subjects(config.data.val_subjects))
    assert len(validation) >= 24
    assert not validation & set(parse_subjects(config.data.train_subjects))


def test_there_are_cpu_and_cuda_presets_for_each_net():
    names = {p.stem for p in CONFIGS}
    assert {"convlstm_fusion_cpu", "convlstm_fusion_cuda", "baseline_cpu", "baseline_cuda"} <= names


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("modle: {name: baseline}", "modle"),
        ("model: {name: baseline, chanels: [8, 8, 8, 8]}", "chanels"),
        ("run: {iterations: 10, learning_rate: 0.1}", "learning_rate"),
        ("data: {augment: {flipp: 0.5}}", "flipp"),
        ("model: {name: gaitset}", "gaitset"),
        ("data: {train_subjects: 074-001}", "empty"),
        ("optimizer: {milestones: [300, 100]}", "ascend"),
        ("run: {precision: fp8}", "precision"),
        ("- just\n- a list", "mapping"),
        ("model: {name: [unclosed", "cannot read"),
        ("model: {name: baseline, temporal: lstm}", "net 'baseline' has no option 'temporal'"),
        ("model: {name: convlstm_fusion, branches: max}", "branches"),
        ("model: {num_classes: 10}", "set from the data"),
        ("model: {name: 'no_module_here:Net'}", "cannot import"),
        ("losses: [{name: triplet, margn: 0.3}]", "loss 'triplet' has no option 'margn'"),
        ("losses: [{name: arcface}]", "unknown loss 'arcface'"),
        ("losses: [{name: triplet}, {name: triplet}]", "listed twice"),
        ("losses: []", "at least 1"),
        ("losses: [{name: triplet, weight: -1}]", "weight"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, complaint):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=complaint):
        load_config(path)


def test_overrides_merge_into_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run: {iterations: 10, seed: 3}")
    config = load_config(path, {"run": {"iterations": 20}})
    assert (config.run.iterations, config.run.seed) == (20, 3)
    assert TrainConfig().model.name == "convlstm_fusion"


def test_losses_and_their_weights_come_from_the_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("losses: [{name: triplet, weight: 2.0, margin: 0.3}]")
    (term,) = load_config(path).losses
    assert (term.name, term.weight, term.options) == ("triplet", 2.0, {"margin": 0.3})
    defaults = TrainConfig().losses
    assert [t.name for t in defaults] == ["triplet", "cross_entropy"]


def test_net_options_are_complete_and_carry_the_class_count():
    options = TrainConfig.model_validate({"model": {"name": "baseline", "parts": 8}})
    full = options.model.net_options(num_classes=50)
    assert full["parts"] == 8
    assert full["num_classes"] == 50
    assert full["channels"] == [64, 128, 256, 512]  # the net's default, filled in
