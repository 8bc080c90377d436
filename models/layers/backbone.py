"""ResNet9 silhouette backbone: a stem and four stages of one BasicBlock each (as GaitBase).

In  x: [N, 1, H, W] float, one silhouette frame per row (H, W = 64, 44)
Out    [N, C4, H / (stem_stride * 4), W / (stem_stride * 4)] (rounded up), C4 = channels[-1]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STAGE_STRIDES = (1, 2, 2, 1)


class BasicBlock(nn.Module):
    """Two 3×3 convs with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet9(nn.Module):
    """Stem (3×3 conv, stride ``stem_stride``) then stages with strides 1, 2, 2, 1."""

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512), stem_stride: int = 1):
        super().__init__()
        if len(channels) != len(STAGE_STRIDES):
            raise ValueError(f"ResNet9 needs {len(STAGE_STRIDES)} stage widths, got {channels}")
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        stages, previous = [], channels[0]
        for width, stride in zip(channels, STAGE_STRIDES, strict=True):
            stages.append(BasicBlock(previous, width, stride))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))
