"""Losses over part embeddings, vectorised over anchors, positives, negatives and parts, and
the plug-in surface that makes them, with their weights, part of the training config.

embeddings: [n, d, p]   logits: [n, classes, p]   labels: int64 [n]
"""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass

import torch
import torch.nn.functional as F

from models.plugins import import_object, validate_options


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


# --- losses as config plug-ins: ``losses: [{name: triplet, weight: 1.0, margin: 0.2}, …]`` ----
# A loss is a class with ``output`` (the net output it reads by default), ``options_class`` (a
# dataclass: its options), optionally ``stats`` (names of scalars it logs beside its value, e.g.
# the fraction of active triplets), and ``__call__(tensor, labels) -> (loss, {stat: tensor})``.


def loss_stats(loss) -> tuple[str, ...]:
    return tuple(getattr(loss, "stats", ()))


@dataclass
class TripletOptions:
    margin: float = 0.2


class TripletLoss:
    """Batch-all triplet loss on part embeddings ``[n, d, p]``; logs the active fraction."""

    output = "embeddings"
    options_class = TripletOptions
    stats = ("active",)

    def __init__(self, options: TripletOptions):
        self.margin = options.margin

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor):
        loss, active = batch_all_triplet_loss(embeddings, labels, self.margin)
        return loss, {"active": active}


@dataclass
class CrossEntropyOptions:
    label_smoothing: float = 0.1


class CrossEntropyLoss:
    """Label-smoothed cross-entropy of every part's classifier, on logits ``[n, classes, p]``."""

    output = "logits"
    options_class = CrossEntropyOptions

    def __init__(self, options: CrossEntropyOptions):
        if not 0 <= options.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {options.label_smoothing}")
        self.label_smoothing = options.label_smoothing

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor):
        return part_cross_entropy(logits, labels, self.label_smoothing), {}


BUILT_IN_LOSSES: dict[str, type] = {"triplet": TripletLoss, "cross_entropy": CrossEntropyLoss}


def resolve_loss(name: str) -> type:
    """A built-in loss by name, or a user's class as ``my_pkg.my_losses:MyLoss``."""
    if ":" in name:
        loss_class = import_object(name, "loss")
    elif name in BUILT_IN_LOSSES:
        loss_class = BUILT_IN_LOSSES[name]
    else:
        raise ValueError(
            f"unknown loss {name!r}; built-in losses: {', '.join(sorted(BUILT_IN_LOSSES))}, "
            "or a class of your own as 'module.path:ClassName'"
        )
    if not (is_dataclass(getattr(loss_class, "options_class", None)) and callable(loss_class)):
        raise ValueError(f"loss {name!r} must be a class with a dataclass `options_class`")
    return loss_class


def build_loss(name: str, options: dict):
    """An instance of loss ``name`` with its options checked against its schema."""
    loss_class = resolve_loss(name)
    return loss_class(validate_options("loss", name, loss_class.options_class, options))


class WeightedLosses:
    """The config's loss terms, summed with their weights over the net's named outputs.

    ``__call__(outputs, labels)`` returns the total and, for the run log, each term's value and
    stats (``{name}`` and ``{name}_{stat}``). A term whose output the net does not produce is an
    error that names both.
    """

    def __init__(self, terms):
        self.terms = []  # (name, weight, output, loss)
        for term in terms:
            loss = build_loss(term.name, term.options)
            self.terms.append((term.name, term.weight, term.output or loss.output, loss))

    def log_fields(self) -> list[str]:
        """The names ``__call__`` logs: each term, then its stats."""
        fields = []
        for name, _, _, loss in self.terms:
            fields += [name, *(f"{name}_{stat}" for stat in loss_stats(loss))]
        return fields

    def __call__(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor):
        total = None
        logged: dict[str, torch.Tensor] = {}
        for name, weight, key, loss in self.terms:
            if key not in outputs:
                raise ValueError(
                    f"loss {name!r} reads the net output {key!r}, which the net does not produce "
                    f"(its outputs: {', '.join(sorted(outputs))})"
                )
            value, stats = loss(outputs[key], labels)
            logged[name] = value.detach()
            logged.update({f"{name}_{stat}": stats[stat].detach() for stat in loss_stats(loss)})
            total = weight * value if total is None else total + weight * value
        return total, logged
