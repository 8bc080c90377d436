"""The baseline (as OpenGait's GaitBase): ResNet9 per frame, temporal max, part head.

In  sils: [n, s, 64, 44]   Out embed: [n, embedding_dim, parts]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.gait_net import GaitNet, GaitNetConfig
from models.layers.temporal import temporal_max
from models.registry import register


@dataclass
class BaselineConfig(GaitNetConfig):
    """The baseline has only the shared fields."""


@register("baseline")
class Baseline(GaitNet):
    config_class = BaselineConfig

    def aggregate(self, frames: torch.Tensor) -> torch.Tensor:
        return temporal_max(frames)  # [n, c, h', w']
