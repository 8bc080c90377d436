"""From a fused feature map to part embeddings and per-part class logits.

HorizontalPyramidPooling: [n, c, h, w] → [n, c, p]  (p horizontal strips, mean + max of each)
SeparateFCs:              [n, c, p]    → [n, d, p]  (one linear map per part)
BNNeck:                   [n, d, p]    → [n, k, p]  (batch norm, then per-part classifier)
"""

from __future__ import annotations

import torch
from torch import nn


class HorizontalPyramidPooling(nn.Module):
    """Split the map into ``parts`` horizontal strips; each strip → mean + max over its pixels.

    In  x: [n, c, h, w], h divisible by parts
    Out    [n, c, parts]
    """

    def __init__(self, parts: int = 16):
        super().__init__()
        self.parts = parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h % self.parts:
            raise ValueError(
                f"a feature map {h} rows high does not split into {self.parts} equal parts: "
                f"choose parts dividing {h} (or a smaller stem stride for more rows)"
            )
        strips = x.reshape(n, c, self.parts, (h // self.parts) * w)  # [n, c, p, h/p * w]
        return strips.mean(dim=-1) + strips.amax(dim=-1)


class SeparateFCs(nn.Module):
    """A separate linear map (no bias) for each part.

    In  x: [n, c_in, p]
    Out    [n, c_out, p]
    """

    def __init__(self, parts: int, in_channels: int, out_channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(parts, in_channels, out_channels))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ncp,pco->nop", x, self.weight)


class BNNeck(nn.Module):
    """Batch norm over every (channel, part), then a per-part classifier; for the CE loss only.

    In  x: [n, d, p]
    Out    [n, classes, p]
    """

    def __init__(self, parts: int, channels: int, classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(channels * parts)
        self.classifier = SeparateFCs(parts, channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d, p = x.shape
        normed = self.bn(x.reshape(n, d * p)).reshape(n, d, p)
        return self.classifier(normed)
