"""Losses over part embeddings, vectorised over anchors, positives, negatives and parts.

embeddings: [n, d, p]   logits: [n, classes, p]   labels: int64 [n]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def part_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """In embeddings: [n, d, p]. Out [p, n, n]: Euclidean distances within each part."""
    parts = embeddings.permute(2, 0, 1).float()  # [p, n, d]
    squared = parts.pow(2).sum(-1)  # [p, n]
    gram = parts @ parts.transpose(1, 2)  # [p, n, n]
    return (squared[:, :, None] + squared[:, None, :] - 2 * gram).clamp_min(1e-12).sqrt()


def batch_all_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-all triplet loss: every valid (anchor, positive, negative) triple in the batch.

    Per part, the loss is the mean of relu(d(a, p) - d(a, n) + margin) over the triples where it
    is non-zero (OpenGait's convention, which keeps the gradient from fading as triples get easy);
    the result is the mean over parts. Also returns the fraction of non-zero triples.
    """
    distances = part_distances(embeddings)  # [p, n, n]
    same = labels[:, None] == labels[None, :]  # [n, n]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = (same & ~eye)[:, :, None] & ~same[:, None, :]  # [n(a), n(pos), n(neg)]
    hinge = (
        distances[:, :, :, None] - distances[:, :, None, :] + margin
    ).relu()  # [p, a, pos, neg]
    hinge = hinge * valid
    active = (hinge > 0).sum(dim=(1, 2, 3))  # [p]
    per_part = hinge.sum(dim=(1, 2, 3)) / active.clamp_min(1)
    active_fraction = active.float().mean() / valid.sum().clamp_min(1)
    return per_part.mean(), active_fraction


def part_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.1
) -> torch.Tensor:
    """Label-smoothed cross-entropy of every part's classifier, averaged over parts."""
    n, _, p = logits.shape
    return F.cross_entropy(
        logits.float(), labels[:, None].expand(n, p), label_smoothing=label_smoothing
    )
