"""How the service decides, from the model card: identification at a promised FPIR for the
gallery it holds (``models.identification``), verification at the card's per-pair threshold,
or at a threshold the request gives. Plain functions of what they need (numpy, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.card import DECISION_FAR, ModelCard
from models.identification import StrangerModel
from service.errors import ServiceError
from service.gallery.composition import GalleryComposition
from service.gallery.index import SubjectHit


class NoThresholdError(ServiceError, ValueError):
    """The model has no calibrated threshold and the request gave none."""

    code = "no_threshold"


@dataclass(frozen=True)
class DecisionRule:
    """How a decision was made: accept at ``threshold`` (a score), which was set for
    (``basis``) a promised FPIR at this gallery (``fpir``: the share of strangers' searches that
    may be given a name), a per-pair FAR (``far``: one probe against one sample), or given by
    the request (``threshold``)."""

    threshold: float
    basis: Literal["fpir", "pair_far", "threshold"]
    fpir: float | None = None
    far: float | None = None
    gallery_subjects: int = 0


@dataclass(frozen=True)
class NamedHit:
    """A subject's best sample for a probe, with what its score means here: ``views``, how many
    views the decision counts for the subject; ``stranger_chance``, the share of strangers'
    searches of this gallery that would reach this score against someone (the FPIR this hit
    would be accepted at; None when the model's card has no identification curves)."""

    subject_id: str
    sample_id: int
    score: float
    views: int
    stranger_chance: float | None


def pair_rule(card: ModelCard | None, threshold: float | None = None, subjects: int = 0):
    """The per-pair decision (verification, and identification without curves): the card's
    1 % FAR threshold, or ``threshold``."""
    if threshold is not None:
        return DecisionRule(threshold, "threshold", gallery_subjects=subjects)
    calibrated = card.threshold_at(DECISION_FAR) if card else None
    if calibrated is None:
        raise NoThresholdError("the model has no calibrated threshold: pass one")
    return DecisionRule(calibrated.score, "pair_far", far=DECISION_FAR, gallery_subjects=subjects)


def identification_rule(
    card: ModelCard | None,
    strangers: StrangerModel | None,
    composition: GalleryComposition,
    threshold: float | None = None,
    fpir: float | None = None,
) -> DecisionRule:
    """The identification decision for this gallery: ``threshold`` if given; else the score at
    which strangers' searches of this gallery are named at most ``fpir`` of the time (default:
    the card's promise), from the card's stranger-rate curves (``strangers``); a card without
    them decides per pair, and says so."""
    subjects = composition.subjects
    if threshold is not None or strangers is None:
        if threshold is None and fpir is not None:
            raise NoThresholdError(
                "the model's card has no identification curves, so no FPIR can be kept: "
                "pass a threshold"
            )
        return pair_rule(card, threshold, subjects)
    fpir = card.identification.fpir if fpir is None else fpir
    limit = strangers.threshold(fpir, composition.composition())
    return DecisionRule(limit, "fpir", fpir=fpir, gallery_subjects=subjects)


def named_hits(
    hits: list[SubjectHit], strangers: StrangerModel | None, composition: GalleryComposition
) -> list[NamedHit]:
    """The hits with their subjects' views and the stranger chance of their scores."""
    gallery = composition.composition()
    return [
        NamedHit(
            h.subject_id,
            h.sample_id,
            h.score,
            composition.views_of(h.subject_id),
            None if strangers is None else float(strangers.fpir(h.score, gallery)),
        )
        for h in hits
    ]


def false_accept_chance(card: ModelCard | None, score: float) -> float | None:
    """The per-pair FAR at ``score`` (the card's pair curve; None without one)."""
    found = card.identification if card else None
    if found is None or found.pair_curve is None:
        return None
    return float(found.pair_curve.rates_model()(score))
