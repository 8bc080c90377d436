"""ConvLSTM + fusion: GaitLab's net, from the original notebooks.

ResNet9 per frame, then two temporal branches over the per-frame maps:
  (a) an LSTM over time at every spatial location (weights shared across locations), last step;
      or, with ``temporal="convlstm"``, a true ConvLSTM with k×k convolutional gates;
  (b) the temporal max;
concatenated and fused by a 1×1 conv, then the part head. With ``branches="lstm"`` only (a) is
kept (no temporal max, no fusion conv): the ablation arm between this net and the baseline.

In  sils: [n, s, 64, 44]   Out embed: [n, embedding_dim, parts]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from models.gait_net import GaitNet, GaitNetConfig
from models.layers.temporal import ConvLSTM, LocationLSTM, temporal_max
from models.registry import register


@dataclass
class ConvLSTMFusionConfig(GaitNetConfig):
    temporal: Literal["lstm", "convlstm"] = "lstm"
    hidden: int | None = None  # recurrent channels; default: the backbone's output channels
    kernel_size: int = 3  # ConvLSTM gate kernel (temporal="convlstm" only)
    branches: Literal["fused", "lstm"] = "fused"  # "lstm": the recurrent branch alone


@register("convlstm_fusion")
class ConvLSTMFusion(GaitNet):
    config_class = ConvLSTMFusionConfig

    def __init__(self, config: ConvLSTMFusionConfig):
        super().__init__(config)
        channels = config.channels[-1]
        hidden = config.hidden or channels
        if config.temporal == "lstm":
            self.recurrent: nn.Module = LocationLSTM(channels, hidden)
        else:
            self.recurrent = ConvLSTM(channels, hidden, config.kernel_size)
        self.fusion: nn.Module | None = None
        if config.branches == "fused":
            self.fusion = nn.Sequential(
                nn.Conv2d(hidden + channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )

    @property
    def head_channels(self) -> int:
        if self.config.branches == "lstm":
            return self.config.hidden or self.config.channels[-1]
        return self.config.channels[-1]

    def aggregate(self, frames: torch.Tensor) -> torch.Tensor:
        recurrent = self.recurrent(frames)  # [n, hidden, h', w']
        if self.fusion is None:
            return recurrent
        pooled = temporal_max(frames)  # [n, c, h', w']
        return self.fusion(torch.cat([recurrent, pooled], dim=1))  # [n, c, h', w']
