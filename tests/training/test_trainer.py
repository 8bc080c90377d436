"""training.trainer on real CASIA-B with tiny nets: learning, exact resume, two-process DDP."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from training.checkpoint import load_checkpoint, model_from_checkpoint
from training.config import TrainConfig
from training.trainer import train

pytestmark = [pytest.mark.casia, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def tiny_config(tree: Path, out: Path, net: str = "convlstm_fusion", **run) -> dict:
    model = {"name": net, "channels": [8, 8, 16, 16], "stem_stride": 2, "parts": 8}
    model["embedding_dim"] = 16
    return {
        "name": f"test-{net}",
        "model": model,
        "data": {
            "root": str(tree),
            "train_subjects": "001-004",
            "val_subjects": "065-066",
            "frames": 8,
            "ordered": net == "convlstm_fusion",
        },
        "sampler": {"subjects": 4, "sequences": 4},
        "optimizer": {"milestones": [1000]},
        "run": {
            "device": "cpu",
            "threads": 1,
            "log_every": 1,
            "val_every": 1000,
            "checkpoint_every": 1000,
            "val_max_frames": 10,
            "out_dir": str(out),
            **run,
        },
    }


def losses(out: Path) -> list[float]:
    with open(out / "train.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("net", ["convlstm_fusion", "baseline"])
def test_a_few_iterations_reduce_the_loss(training_tree, tmp_path, net):
    config = TrainConfig.model_validate(tiny_config(training_tree, tmp_path, net, iterations=30))
    checkpoint = train(config, progress=False)
    history = losses(tmp_path)
    assert len(history) == 30
    assert sum(history[-5:]) / 5 < 0.85 * sum(history[:5]) / 5
    state = load_checkpoint(checkpoint)
    assert state["iteration"] == 30
    assert state["subject_ids"] == ["001", "002", "003", "004"]
    with open(tmp_path / "val.csv") as handle:
        final = list(csv.DictReader(handle))[-1]
    assert 0 <= float(final["NM"]) <= 100
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_resume_continues_bit_for_bit(training_tree, tmp_path):
    straight = TrainConfig.model_validate(
        tiny_config(training_tree, tmp_path / "a", iterations=6, checkpoint_every=3)
    )
    train(straight, progress=False)
    first_half = TrainConfig.model_validate(
        tiny_config(training_tree, tmp_path / "b", iterations=3, checkpoint_every=3)
    )
    train(first_half, progress=False)
    second_half = first_half.model_copy(
        update={"run": first_half.run.model_copy(update={"iterations": 6})}
    )
    train(second_half, resume=True, progress=False)

    a, b = (
        load_checkpoint(tmp_path / "a" / "latest.pt"),
        load_checkpoint(tmp_path / "b" / "latest.pt"),
    )
    assert a["iteration"] == b["iteration"] == 6
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    momentum_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    momentum_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momentum_a, momentum_b, strict=True))
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_checkpoint_alone_rebuilds_the_model(training_tree, tmp_path):
    config = TrainConfig.model_validate(tiny_config(training_tree, tmp_path, iterations=2))
    model = model_from_checkpoint(train(config, progress=False))
    with torch.no_grad():
        assert model.embed(torch.rand(1, 5, 64, 44)).shape == (1, 16, 8)


def test_two_process_gloo_ddp(training_tree, tmp_path):
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(
        yaml.safe_dump(tiny_config(training_tree, tmp_path / "out", iterations=4))
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "training.train",
            "--config",
            str(config_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(tmp_path / "out" / "latest.pt")
    assert state["iteration"] == 4
    assert len(losses(tmp_path / "out")) == 4
    assert state["config"]["sampler"]["subjects"] == 4  # split 2 + 2 across the ranks


@pytest.mark.slow
def test_a_compiled_net_trains_like_the_eager_one(training_tree, tmp_path):
    """run.compile: torch.compile (inductor) takes the same steps, to rounding."""
    histories = []
    for compiled in (False, True):
        out = tmp_path / f"compiled-{compiled}"
        config = tiny_config(training_tree, out, iterations=3, compile=compiled)
        config["run"]["val_every"] = config["run"]["iterations"] = 3
        checkpoint = train(TrainConfig.model_validate(config), progress=False)
        histories.append(losses(out))
        assert not any(key.startswith("_orig_mod") for key in load_checkpoint(checkpoint)["model"])
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-3)


def test_validations_cut_short_are_done_on_resume(training_tree, tmp_path):
    config = TrainConfig.model_validate(
        tiny_config(training_tree, tmp_path, iterations=4, val_every=2, checkpoint_every=2)
    )
    train(config, progress=False)
    val_csv = tmp_path / "val.csv"
    complete = val_csv.read_text()
    with open(val_csv) as handle:
        val = list(csv.DictReader(handle))
    assert [(r["iteration"], r["max_frames"]) for r in val] == [("2", "10"), ("4", "10"), ("4", "")]
    trained = (tmp_path / "train.csv").read_text()
    # stopped during the final, all-frames validation: its checkpoint was already written
    val_csv.write_text("".join(complete.splitlines(keepends=True)[:-1]))
    train(config, resume=True, progress=False)
    assert val_csv.read_text() == complete  # the same weights validated again: the same row
    assert (tmp_path / "train.csv").read_text() == trained  # and nothing trained again
