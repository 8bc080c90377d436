"""What every GaitLab net shares: config fields, the per-frame backbone, the part head, and one
surface (``forward_features``, ``forward_head``, ``forward``, ``embed``).

Input  sils: [n, s, 64, 44] float in [0, 1], s frames in temporal order (any s >= 1)
Output of ``embed``: [n, embedding_dim, parts], the embedding used for matching (pre-BNNeck)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers.backbone import ResNet9
from models.layers.heads import BNNeck, HorizontalPyramidPooling, SeparateFCs


@dataclass
class GaitNetConfig:
    """Fields every net has. ``channels`` are the ResNet9 stage widths."""

    channels: tuple[int, ...] = (64, 128, 256, 512)
    stem_stride: int = 1
    embedding_dim: int = 256
    parts: int = 16
    num_classes: int = 74  # set by the trainer from the training subjects


class GaitNet(nn.Module):
    """Backbone per frame → temporal aggregation (subclass) → parts → embeddings and logits.

    A subclass sets ``config_class`` (its options: GaitNetConfig's fields plus its own) and
    implements ``aggregate``; ``head_channels`` when its map is not ``channels[-1]`` wide.
    """

    config_class: type = GaitNetConfig

    def __init__(self, config: GaitNetConfig):
        super().__init__()
        self.config = config
        self.backbone = ResNet9(config.channels, config.stem_stride)
        self.pooling = HorizontalPyramidPooling(config.parts)
        self.embedding = SeparateFCs(config.parts, self.head_channels, config.embedding_dim)
        self.bnneck = BNNeck(config.parts, config.embedding_dim, config.num_classes)

    @property
    def head_channels(self) -> int:
        """Channels of the map that ``aggregate`` returns."""
        return self.config.channels[-1]

    def frame_features(self, sils: torch.Tensor) -> torch.Tensor:
        """In sils: [n, s, h, w]. Out [n, s, c, h', w']: the backbone on every frame."""
        n, s, h, w = sils.shape
        maps = self.backbone(sils.reshape(n * s, 1, h, w))  # [n*s, c, h', w']
        return maps.reshape(n, s, *maps.shape[1:])

    def aggregate(self, frames: torch.Tensor) -> torch.Tensor:
        """In frames: [n, s, c, h', w']. Out [n, head_channels, h', w']."""
        raise NotImplementedError

    def forward_features(self, sils: torch.Tensor) -> torch.Tensor:
        """In sils: [n, s, h, w]. Out [n, head_channels, h', w']."""
        return self.aggregate(self.frame_features(sils))

    def embed(self, sils: torch.Tensor) -> torch.Tensor:
        """In sils: [n, s, h, w]. Out [n, embedding_dim, parts]."""
        return self.embedding(self.pooling(self.forward_features(sils)))

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """In features: [n, c, h', w']. Out embeddings [n, d, p] and logits [n, classes, p]."""
        embeddings = self.embedding(self.pooling(features))
        return {"embeddings": embeddings, "logits": self.bnneck(embeddings)}

    def forward(self, sils: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(sils))
