"""training.config: presets validate; typos and bad values are rejected with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, TrainConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_presets_are_valid(path):
    config = load_config(path)
    assert config.model.name in ("convlstm_fusion", "baseline")
    assert config.optimizer.lr == 0.05


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
