"""A net from the user's own module, outside the package: trained, exported and embedded by
the same code as the built-in nets, with nothing registered and no file of GaitLab edited."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from models.engine import EmbeddingEngine
from tests.training.test_trainer import tiny_config
from training.checkpoint import load_checkpoint, model_from_checkpoint
from training.config import TrainConfig
from training.data.cache import SilhouetteCache
from training.export import OnnxEmbedder, export_checkpoint
from training.trainer import train

pytestmark = [pytest.mark.casia, pytest.mark.slow]

TINY_NET = '''
"""A user's net in one file: per-frame conv, temporal max, horizontal parts.

In sils: [n, s, 64, 44]. embed: [n, width, parts]. forward: embeddings and per-part logits.
"""
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TinyConfig:
    width: int = 8
    parts: int = 4
    num_classes: int = 2  # set by the trainer from the training subjects


class TinyNet(nn.Module):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(1, config.width, 3, stride=2, padding=1)
        self.classifier = nn.Linear(config.width, config.num_classes)

    def embed(self, sils):
        n, s, h, w = sils.shape
        maps = torch.relu(self.conv(sils.reshape(n * s, 1, h, w)))  # [n*s, c, 32, 22]
        maps = maps.reshape(n, s, *maps.shape[1:]).amax(1)  # [n, c, 32, 22]
        return maps.reshape(n, maps.shape[1], self.config.parts, -1).mean(-1)  # [n, c, p]

    def forward(self, sils):
        embeddings = self.embed(sils)
        logits = self.classifier(embeddings.transpose(1, 2)).transpose(1, 2)  # [n, k, p]
        return {"embeddings": embeddings, "logits": logits}
'''


@pytest.fixture
def user_net(tmp_path, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "my_gait_nets.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(folder))
    yield "my_gait_nets:TinyNet"
    sys.modules.pop("my_gait_nets", None)


def test_a_users_net_trains_exports_and_embeds(user_net, training_tree, tmp_path):
    raw = tiny_config(training_tree, tmp_path / "run", iterations=6)
    raw["model"] = {"name": user_net, "width": 6, "parts": 4}
    raw["losses"] = [
        {"name": "triplet", "weight": 1.0, "margin": 0.2},
        {"name": "cross_entropy", "weight": 0.5},
    ]
    checkpoint = train(TrainConfig.model_validate(raw), progress=False)
    state = load_checkpoint(checkpoint)
    assert state["model_name"] == user_net
    assert state["model_options"] == {"width": 6, "parts": 4, "num_classes": 4}

    result = export_checkpoint(checkpoint, tmp_path / "user.onnx", progress=False)
    assert result.parity.passed
    assert result.card.net == user_net
    assert result.card.embedding.shape == ["batch", 6, 4]
    assert result.card.version.startswith("my_gait_nets.TinyNet-")
    assert result.card.thresholds

    engine = EmbeddingEngine(result.path, device="cpu")
    cache = SilhouetteCache.load(training_tree, ["065"], progress=False)
    clips = np.stack([cache.sequence(i)[:20] for i in range(3)])
    got = engine.embed(clips)
    with torch.no_grad():
        expected = OnnxEmbedder(model_from_checkpoint(checkpoint))(torch.from_numpy(clips))
    assert got.shape == (3, 6, 4)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4)
