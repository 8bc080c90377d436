"""training.losses: the vectorised batch-all triplet loss equals a plain loop over triples."""

from __future__ import annotations

import itertools

import pytest
import torch

from training.losses import batch_all_triplet_loss, part_cross_entropy, part_distances


def looped_triplet(embeddings, labels, margin):
    n, _, p = embeddings.shape
    per_part = []
    for part in range(p):
        total, active = 0.0, 0
        for a, pos, neg in itertools.product(range(n), repeat=3):
            if a == pos or labels[a] != labels[pos] or labels[a] == labels[neg]:
                continue
            d_ap = (embeddings[a, :, part] - embeddings[pos, :, part]).norm()
            d_an = (embeddings[a, :, part] - embeddings[neg, :, part]).norm()
            value = max(0.0, float(d_ap - d_an + margin))
            total += value
            active += value > 0
        per_part.append(total / max(active, 1))
    return sum(per_part) / p


def test_distances_match_cdist():
    emb = torch.randn(6, 5, 3)
    expected = torch.stack([torch.cdist(emb[:, :, i], emb[:, :, i]) for i in range(3)])
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    got = part_distances(emb)
    torch.testing.assert_close(
        got[:, off_diagonal], expected[:, off_diagonal], atol=1e-4, rtol=1e-4
    )
    assert got.diagonal(dim1=1, dim2=2).max() < 2e-3  # self-distances: cancellation noise only


@pytest.mark.parametrize("margin", [0.2, 5.0])
def test_batch_all_triplet_equals_loop(margin):
    torch.manual_seed(1)
    emb = torch.randn(8, 4, 2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    loss, active = batch_all_triplet_loss(emb, labels, margin)
    assert loss.item() == pytest.approx(looped_triplet(emb, labels, margin), rel=1e-5)
    assert 0 < active.item() <= 1


def test_separated_clusters_give_zero_loss_and_gradients_flow():
    labels = torch.tensor([0, 0, 1, 1])
    emb = torch.zeros(4, 2, 1)
    emb[2:, 0] = 10.0
    loss, active = batch_all_triplet_loss(emb, labels, 0.2)
    assert loss.item() == 0.0
    assert active.item() == 0.0
    emb = torch.randn(4, 2, 1, requires_grad=True)
    batch_all_triplet_loss(emb, labels, 10.0)[0].backward()
    assert emb.grad.abs().sum() > 0


def test_part_cross_entropy_is_the_mean_over_parts():
    logits = torch.randn(4, 3, 2)
    labels = torch.tensor([0, 1, 2, 0])
    expected = (
        sum(
            torch.nn.functional.cross_entropy(logits[:, :, i], labels, label_smoothing=0.1)
            for i in range(2)
        )
        / 2
    )
    torch.testing.assert_close(part_cross_entropy(logits, labels, 0.1), expected)
