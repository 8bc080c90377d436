"""training.losses: the vectorised batch-all triplet loss equals a plain loop over triples; the
config's loss terms are weighted, read named outputs, and may come from the user's module."""

from __future__ import annotations

import itertools

import pytest
import torch

from training.config import TrainConfig
from training.losses import (
    WeightedLosses,
    batch_all_triplet_loss,
    part_cross_entropy,
    part_distances,
)


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


def _terms(*terms: dict):
    return TrainConfig.model_validate({"losses": list(terms)}).losses


def test_weighted_losses_sum_the_terms_with_their_weights():
    torch.manual_seed(0)
    outputs = {"embeddings": torch.randn(8, 4, 3), "logits": torch.randn(8, 5, 3)}
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    triplet, active = batch_all_triplet_loss(outputs["embeddings"], labels, 0.3)
    ce = part_cross_entropy(outputs["logits"], labels, 0.0)
    criterion = WeightedLosses(
        _terms(
            {"name": "triplet", "weight": 2.0, "margin": 0.3},
            {"name": "cross_entropy", "weight": 0.5, "label_smoothing": 0.0},
        )
    )
    total, logged = criterion(outputs, labels)
    assert total.item() == pytest.approx(2.0 * triplet.item() + 0.5 * ce.item(), rel=1e-6)
    assert list(logged) == criterion.log_fields() == ["triplet", "triplet_active", "cross_entropy"]
    assert logged["triplet_active"].item() == pytest.approx(active.item())


def test_a_loss_reading_an_output_the_net_lacks_is_named():
    criterion = WeightedLosses(_terms({"name": "cross_entropy"}))
    with pytest.raises(ValueError, match="loss 'cross_entropy' reads the net output 'logits'"):
        criterion({"embeddings": torch.zeros(4, 2, 1)}, torch.tensor([0, 0, 1, 1]))


def test_a_users_loss_by_import_path_reading_a_named_output(tmp_path, monkeypatch):
    (tmp_path / "user_losses_x.py").write_text(
        "from dataclasses import dataclass\n\n\n"
        "@dataclass\nclass Options:\n    power: float = 2.0\n\n\n"
        "class NormLoss:\n"
        "    output = 'embeddings'\n"
        "    options_class = Options\n\n"
        "    def __init__(self, options):\n        self.power = options.power\n\n"
        "    def __call__(self, x, labels):\n        return x.abs().pow(self.power).mean(), {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    criterion = WeightedLosses(
        _terms({"name": "user_losses_x:NormLoss", "power": 1.0, "output": "features"})
    )
    total, _ = criterion({"features": torch.full((2, 3), -2.0)}, torch.tensor([0, 1]))
    assert total.item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="has no option 'p'"):
        _terms({"name": "user_losses_x:NormLoss", "p": 1.0})
