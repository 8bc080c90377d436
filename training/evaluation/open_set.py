"""Open-set evaluation on the service's own score, numpy only.

The score is ``models.scoring.similarity`` (mean over parts of the cosine similarity, higher is
more alike): the number the service compares with its threshold. Both questions are asked across
views, as in the rank-1 protocol: a probe never meets a gallery sequence seen from its own view.

**Verification** ("is this the claimed person?"): every probe sequence of the NM, BG and CL sets
(``nm-05/06``, ``bg-01/02``, ``cl-01/02``) against every gallery sequence (``nm-01``–``04``) of
another view. A pair of one subject is genuine, of two subjects an impostor pair. At a threshold,
the false accept rate (FAR) is the share of impostor pairs scoring at or above it and the true
accept rate (TAR) the share of genuine pairs. "TAR at FAR x" is read at the lowest threshold whose
FAR is at most x.

**Open-set identification** ("who is this, if anyone?"): the subjects are split at random into
enrolled subjects and impostors, whose walks are kept out of the gallery. Every probe is searched
against the enrolled subjects' gallery sequences; its answer is the subject of the best-scoring
sequence (as the service ranks subjects by their best sample), accepted when that score reaches
the threshold. The false positive identification rate (FPIR) is the share of impostors' probes
accepted as anyone; the detection and identification rate (DIR) the share of enrolled subjects'
probes accepted *and* named right. "DIR at FPIR x" is read at the lowest threshold whose FPIR is
at most x, in each split; figures are means over the splits.

One threshold serves every condition (the service does not know what a walker wears), so the
per-set figures at a FAR are read at the threshold found on all sets' pairs together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.scoring import similarity
from training.evaluation.protocol import GALLERY_CONDITIONS, PROBE_SETS, check_labels

ALL = "all"
"""Every probe set together: the pairs the service meets."""

DEFAULT_FARS: tuple[float, ...] = (1e-2, 1e-3)
CURVE_FARS = np.logspace(-4, 0, 81)
"""FARs at which the curves (ROC, DET, DIR) are sampled: 20 points per decade."""


class Ranked:
    """Scores sorted once, for many threshold and rate look-ups. In scores: float [k], no NaN.

    Thresholds are compared in the scores' own dtype, as ``scores >= threshold`` does with a
    Python float (a float32 score one step below a threshold stays below it).
    """

    def __init__(self, scores: np.ndarray):
        scores = np.asarray(scores)
        if scores.dtype.kind != "f":
            scores = scores.astype(np.float64)
        if np.isnan(scores).any():
            raise ValueError("scores must not be NaN (are the embeddings finite?)")
        self.ascending = np.sort(scores)

    def __len__(self) -> int:
        return len(self.ascending)

    def threshold_for_rate(self, rate: float) -> float:
        """The lowest threshold at which at most ``rate`` of the scores are at or above it.

        Scores tied at the boundary are all rejected, so the rate reached may be below
        ``rate``; at ``rate`` 1 every score is accepted (``-inf``).
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"a rate lies in [0, 1], got {rate}")
        count = len(self.ascending)
        if count == 0:
            raise ValueError("a threshold needs at least one negative score")
        allowed = math.floor(rate * count + 1e-9)  # scores that may be accepted
        if allowed >= count:
            return -math.inf
        boundary = self.ascending[count - 1 - allowed]  # the highest score to reject
        return float(np.nextafter(boundary, np.array(np.inf, dtype=boundary.dtype)))

    def share_accepted(self, threshold: float) -> float:
        """Share of the scores at or above ``threshold`` (NaN when there are none)."""
        count = len(self.ascending)
        if count == 0:
            return math.nan
        limit = np.asarray(threshold).astype(self.ascending.dtype)
        return float(count - np.searchsorted(self.ascending, limit, side="left")) / count


def threshold_for_rate(negatives: np.ndarray, rate: float) -> float:
    """:meth:`Ranked.threshold_for_rate` of ``negatives`` float [k], k ≥ 1."""
    return Ranked(negatives).threshold_for_rate(rate)


def accepted(scores: np.ndarray, threshold: float) -> float:
    """Share of ``scores`` at or above ``threshold`` (NaN when there are none)."""
    return Ranked(scores).share_accepted(threshold)


SET_NAMES: tuple[str, ...] = tuple(PROBE_SETS)
"""Probe set codes: ``SET_NAMES[code]`` is the set's name (``NM``, ``BG``, ``CL``)."""


def set_codes(conditions: np.ndarray) -> np.ndarray:
    """The probe set of each probe condition, as an index into :data:`SET_NAMES` → int8 [n]."""
    codes = np.full(len(conditions), -1, dtype=np.int8)
    for code, set_conditions in enumerate(PROBE_SETS.values()):
        codes[np.isin(conditions, set_conditions)] = code
    return codes


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """Verification scores. genuine, impostor: float [k]; genuine_set, impostor_set: int8 [k],
    the probe set of each pair (an index into :data:`SET_NAMES`); subjects: how many subjects
    the pairs come from."""

    genuine: np.ndarray
    impostor: np.ndarray
    genuine_set: np.ndarray
    impostor_set: np.ndarray
    subjects: int
    genuine_subject: np.ndarray | None = None  # int [k]: index of the pair's subject
    impostor_subjects: np.ndarray | None = None  # int [k, 2]: (probe, gallery) subject indices

    def of(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) scores of one probe set, or of all of them (``ALL``)."""
        if name == ALL:
            return self.genuine, self.impostor
        code = SET_NAMES.index(name)
        return self.genuine[self.genuine_set == code], self.impostor[self.impostor_set == code]


def pair_scores(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    cross_view: bool = True,
) -> Pairs:
    """Every probe sequence against every gallery sequence (of another view, by default).

    In feats: [n, c, p] and their [n] labels, e.g. ``'001'``, ``'cl-02'``, ``'090'``.
    """
    feats, subjects, conditions, views = check_labels(feats, subjects, conditions, views)
    probes = np.isin(conditions, [c for conds in PROBE_SETS.values() for c in conds])
    gallery = np.isin(conditions, GALLERY_CONDITIONS)
    scores = similarity(feats[probes], feats[gallery])  # [m, g]
    same = subjects[probes][:, None] == subjects[gallery][None, :]
    counted = np.ones_like(same)
    if cross_view:
        counted = views[probes][:, None] != views[gallery][None, :]
    probe_set = np.broadcast_to(set_codes(conditions[probes])[:, None], scores.shape)
    genuine, impostor = same & counted, ~same & counted
    people, index = np.unique(subjects, return_inverse=True)
    probe_of = np.broadcast_to(index[probes][:, None], scores.shape)
    gallery_of = np.broadcast_to(index[gallery][None, :], scores.shape)
    return Pairs(
        genuine=scores[genuine],
        impostor=scores[impostor],
        genuine_set=probe_set[genuine],
        impostor_set=probe_set[impostor],
        subjects=len(people),
        genuine_subject=probe_of[genuine].astype(np.int32),
        impostor_subjects=np.stack([probe_of[impostor], gallery_of[impostor]], 1).astype(np.int32),
    )


# Fewer subjects than this get no interval: a bootstrap of a handful of subjects redraws the same
# few people (with 2, every draw with an impostor pair is the original pair: a zero-width FAR
# interval exactly where the uncertainty is largest).
MIN_BOOTSTRAP_SUBJECTS = 10


def subject_bootstrap(
    pairs: Pairs,
    threshold: float,
    draws: int = 1000,
    level: float = 0.9,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> dict[str, tuple[float, float]]:
    """How far FAR and TAR at ``threshold`` could move on another set of as many subjects.

    Subjects are drawn with replacement (pairs belong to subjects, not to themselves: resampling
    pairs would understate the spread); each draw's rates count every pair of the drawn subjects
    as often as both were drawn. Returns ``{"far": (low, high), "tar": (low, high)}``, the
    central ``level`` interval over ``draws`` draws. ``weights``: int [draws, subjects], how often
    each subject was drawn in each draw (default: drawn here).
    """
    n = pairs.subjects
    limit = np.asarray(threshold).astype(pairs.impostor.dtype)
    hits = pairs.impostor >= limit
    cell = pairs.impostor_subjects[:, 0] * n + pairs.impostor_subjects[:, 1]
    impostors = np.bincount(cell, minlength=n * n).reshape(n, n).astype(np.float64)
    accepted_ = np.bincount(cell, weights=hits, minlength=n * n).reshape(n, n)
    genuine = np.bincount(pairs.genuine_subject, minlength=n).astype(np.float64)
    true_hits = np.bincount(pairs.genuine_subject, weights=pairs.genuine >= limit, minlength=n)
    if weights is None:
        weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=draws)
    with np.errstate(invalid="ignore", divide="ignore"):
        far = np.einsum("bi,ij,bj->b", weights, accepted_, weights) / np.einsum(
            "bi,ij,bj->b", weights, impostors, weights
        )
        tar = (weights @ true_hits) / (weights @ genuine)
    tail = 100 * (1 - level) / 2
    return {
        name: (
            tuple(float(v) for v in np.nanpercentile(rates, [tail, 100 - tail]))
            if np.isfinite(rates).any()
            else (math.nan, math.nan)  # no draw had a pair of this kind
        )
        for name, rates in (("far", far), ("tar", tar))
    }


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """The rate where false accepts and false rejects meet: the smallest max(FAR, FRR) over
    every threshold (each score, and just above it)."""
    scores = np.unique(np.concatenate([genuine, impostor]).astype(np.float64))
    thresholds = np.concatenate([scores, np.nextafter(scores, np.inf)])
    ranked_genuine, ranked_impostor = np.sort(genuine), np.sort(impostor)
    far = 1.0 - np.searchsorted(ranked_impostor, thresholds, side="left") / len(ranked_impostor)
    frr = np.searchsorted(ranked_genuine, thresholds, side="left") / len(ranked_genuine)
    return float(np.min(np.maximum(far, frr)))


@dataclass
class OperatingPoint:
    """Accept rates at one threshold, overall and per probe set."""

    threshold: float
    false_rate: dict[str, float]  # set → FAR (verification) or FPIR (identification)
    true_rate: dict[str, float]  # set → TAR or DIR
    target: float | None = None  # the false rate the threshold was chosen for
    label: str = ""
    spread: dict[str, tuple[float, float]] | None = None  # subject_bootstrap's, over all sets

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "target": self.target,
            "threshold": _finite(self.threshold),
            "false_rate": {k: _finite(v) for k, v in self.false_rate.items()},
            "true_rate": {k: _finite(v) for k, v in self.true_rate.items()},
            "spread_90": (
                {k: [_finite(v) for v in pair] for k, pair in self.spread.items()}
                if self.spread
                else None
            ),
        }


@dataclass
class Verification:
    """TAR at FAR per probe set: ``at_far`` at thresholds chosen on all pairs, ``own_threshold``
    with each set's own threshold (its best case); ``given`` at thresholds passed in (a card's);
    ``curve[set]`` = (FAR, TAR) sampled at :data:`CURVE_FARS`."""

    subjects: int
    pairs: dict[str, dict[str, int]]  # set → {"genuine": …, "impostor": …}
    at_far: list[OperatingPoint]
    own_threshold: dict[str, list[OperatingPoint]]
    eer: dict[str, float]
    given: list[OperatingPoint] = field(default_factory=list)
    curve: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "subjects": self.subjects,
            "pairs": self.pairs,
            "at_far": [point.to_dict() for point in self.at_far],
            "own_threshold": {
                name: [point.to_dict() for point in points]
                for name, points in self.own_threshold.items()
            },
            "eer": self.eer,
            "given": [point.to_dict() for point in self.given],
            "curve": {name: {"far": far, "tar": tar} for name, (far, tar) in self.curve.items()},
        }


class _RankedPairs:
    """Each probe set's genuine and impostor scores, sorted once."""

    def __init__(self, pairs: Pairs, names: list[str]):
        self.pairs = pairs
        self.ranked = {name: tuple(map(Ranked, pairs.of(name))) for name in names}

    def point(self, names, threshold, target=None, label="") -> OperatingPoint:
        far, tar = {}, {}
        for name in names:
            genuine, impostor = self.ranked[name]
            far[name] = impostor.share_accepted(threshold)
            tar[name] = genuine.share_accepted(threshold)
        spread = None
        if (
            ALL in names
            and self.pairs.impostor_subjects is not None
            and self.pairs.subjects >= MIN_BOOTSTRAP_SUBJECTS
        ):
            spread = subject_bootstrap(self.pairs, threshold)
        return OperatingPoint(threshold, far, tar, target, label, spread)


def verify_pairs(
    pairs: Pairs,
    fars: Sequence[float] = DEFAULT_FARS,
    given: Sequence[tuple[str, float]] = (),
) -> Verification:
    """Verification figures of ``pairs``; ``given``: (label, threshold) points to measure too."""
    names = [name for name in (ALL, *PROBE_SETS) if all(len(s) for s in pairs.of(name))]
    if ALL not in names:
        raise ValueError("verification needs both genuine and impostor pairs")
    ranked = _RankedPairs(pairs, names)
    counts = {}
    for name in names:
        genuine, impostor = ranked.ranked[name]
        counts[name] = {"genuine": len(genuine), "impostor": len(impostor)}
    everything = ranked.ranked[ALL][1]
    at_far = [ranked.point(names, everything.threshold_for_rate(far), far) for far in fars]
    own, eer, curve = {}, {}, {}
    for name in names:
        genuine, impostor = ranked.ranked[name]
        own[name] = [ranked.point([name], impostor.threshold_for_rate(far), far) for far in fars]
        eer[name] = equal_error_rate(*pairs.of(name))
        thresholds = [impostor.threshold_for_rate(far) for far in CURVE_FARS]
        curve[name] = (
            [impostor.share_accepted(t) for t in thresholds],
            [genuine.share_accepted(t) for t in thresholds],
        )
    points = [ranked.point(names, t, label=label) for label, t in given]
    return Verification(pairs.subjects, counts, at_far, own, eer, points, curve)


# --- open-set identification -----------------------------------------------------------------


@dataclass(frozen=True)
class Searches:
    """Every probe's best answer in every split.

    top: float [k], the best score (-inf when the gallery held nothing of another view);
    correct: bool [k], whether the best sequence is the probe's subject; mated: bool [k], whether
    the probe's subject has walks in the gallery; probe_set: int8 [k] (an index into
    :data:`SET_NAMES`); split: int [k].
    """

    top: np.ndarray
    correct: np.ndarray
    mated: np.ndarray
    probe_set: np.ndarray
    split: np.ndarray
    enrolled: int  # subjects enrolled per split
    impostors: int  # subjects held out per split

    def where(self, split: int | None = None, name: str = ALL) -> np.ndarray:
        """bool [k]: the probes of one split (all when None) and one probe set."""
        keep = np.ones(len(self.top), dtype=bool)
        if split is not None:
            keep &= self.split == split
        if name != ALL:
            keep &= self.probe_set == SET_NAMES.index(name)
        return keep


def search_splits(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    impostor_share: float = 0.5,
    splits: int = 10,
    seed: int = 0,
    cross_view: bool = True,
    impostor_sets: Sequence[Sequence[str]] | None = None,
) -> Searches:
    """Search every probe against the enrolled subjects' gallery in ``splits`` random splits
    (``impostor_sets``: the impostors of each split, chosen by hand, instead)."""
    feats, subjects, conditions, views = check_labels(feats, subjects, conditions, views)
    everyone = np.unique(subjects)
    if impostor_sets is None:
        if splits < 1:
            raise ValueError(f"splits must be at least 1, got {splits}")
        held_out = round(impostor_share * len(everyone))
        rng = np.random.default_rng(seed)
        impostor_sets = [rng.permutation(everyone)[:held_out] for _ in range(splits)]
    impostor_sets = [np.unique(np.asarray(chosen, dtype=str)) for chosen in impostor_sets]
    for chosen in impostor_sets:
        if not 1 <= len(chosen) < len(everyone) or not np.isin(chosen, everyone).all():
            raise ValueError(
                f"{len(chosen)} impostors among {len(everyone)} subjects: open-set "
                "identification needs at least one impostor and one enrolled subject, "
                "impostors among the evaluated subjects"
            )
    probes = np.isin(conditions, [c for conds in PROBE_SETS.values() for c in conds])
    gallery = np.isin(conditions, GALLERY_CONDITIONS)
    scores = similarity(feats[probes], feats[gallery])  # [m, g], shared by every split
    if cross_view:
        scores[views[probes][:, None] == views[gallery][None, :]] = -np.inf
    probe_subjects, gallery_subjects = subjects[probes], subjects[gallery]
    probe_set = set_codes(conditions[probes])
    top, correct, mated, split_of = [], [], [], []
    for split, impostors in enumerate(impostor_sets):
        enrolled = ~np.isin(gallery_subjects, impostors)  # [g]
        in_gallery = np.where(enrolled[None, :], scores, -np.inf)
        best = in_gallery.argmax(axis=1)
        top.append(in_gallery[np.arange(len(best)), best])
        correct.append(gallery_subjects[best] == probe_subjects)
        # a probe is mated when its subject has walks in the gallery (of any view)
        mated.append(np.isin(probe_subjects, gallery_subjects[enrolled]))
        split_of.append(np.full(len(best), split))
    return Searches(
        top=np.concatenate(top),
        correct=np.concatenate(correct) & np.isfinite(np.concatenate(top)),
        mated=np.concatenate(mated),
        probe_set=np.tile(probe_set, len(impostor_sets)),
        split=np.concatenate(split_of),
        enrolled=len(everyone) - len(impostor_sets[0]),
        impostors=len(impostor_sets[0]),
    )


@dataclass
class Identification:
    """Open-set identification: ``at_fpir`` (means over splits, threshold chosen per split and
    reported as the mean), ``given`` at thresholds passed in, ``rank1`` without a threshold
    (closed set, per probe set), ``curve[set]`` = (FPIR, DIR) pooled over the splits."""

    enrolled: int
    impostors: int
    splits: int
    probes: dict[str, dict[str, int]]  # set → {"mated": …, "non_mated": …} per split
    at_fpir: list[OperatingPoint]
    rank1: dict[str, float]
    given: list[OperatingPoint] = field(default_factory=list)
    curve: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "enrolled_subjects": self.enrolled,
            "impostor_subjects": self.impostors,
            "splits": self.splits,
            "probes_per_split": self.probes,
            "at_fpir": [point.to_dict() for point in self.at_fpir],
            "rank1": self.rank1,
            "given": [point.to_dict() for point in self.given],
            "curve": {name: {"fpir": f, "dir": d} for name, (f, d) in self.curve.items()},
        }


def _rates(searches: Searches, keep: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FPIR, DIR) of the probes in ``keep`` at ``threshold``."""
    hit = searches.top >= threshold
    non_mated, mated = keep & ~searches.mated, keep & searches.mated
    fpir = float(hit[non_mated].mean()) if non_mated.any() else math.nan
    dir_ = float((hit & searches.correct)[mated].mean()) if mated.any() else math.nan
    return fpir, dir_


def _identification_point(searches, names, threshold, target=None, label="") -> OperatingPoint:
    rates = {name: _rates(searches, searches.where(None, name), threshold) for name in names}
    return OperatingPoint(
        threshold,
        {name: fpir for name, (fpir, _) in rates.items()},
        {name: dir_ for name, (_, dir_) in rates.items()},
        target,
        label,
    )


def identify_open_set(
    searches: Searches,
    fpirs: Sequence[float] = DEFAULT_FARS,
    given: Sequence[tuple[str, float]] = (),
) -> Identification:
    """Open-set identification figures of ``searches``; ``given``: (label, threshold) points.

    At each FPIR the threshold is chosen in each split on that split's impostor probes (a split
    without any is left out) and the figures are means over the splits; the threshold reported
    is the mean of the splits' thresholds.
    """
    names = [ALL, *(n for n in PROBE_SETS if (searches.where(None, n) & searches.mated).any())]
    if not (~searches.mated).any() or not searches.mated.any():
        raise ValueError("open-set identification needs enrolled and impostor probes")
    splits = int(searches.split.max()) + 1
    usable = [split for split in range(splits) if (searches.where(split) & ~searches.mated).any()]
    at_fpir = []
    for fpir in fpirs:
        per_split = []
        for split in usable:
            non_mated = searches.top[searches.where(split) & ~searches.mated]
            threshold = threshold_for_rate(non_mated, fpir)
            per_split.append(
                {name: _rates(searches, searches.where(split, name), threshold) for name in names}
                | {"threshold": threshold}
            )
        at_fpir.append(
            OperatingPoint(
                threshold=_mean([s["threshold"] for s in per_split]),
                false_rate={n: _mean([s[n][0] for s in per_split]) for n in names},
                true_rate={n: _mean([s[n][1] for s in per_split]) for n in names},
                target=fpir,
            )
        )
    first = searches.where(0)
    probes, rank1, curve = {}, {}, {}
    for name in names:
        keep = searches.where(None, name)
        in_first = first & keep
        probes[name] = {
            "mated": int((in_first & searches.mated).sum()),
            "non_mated": int((in_first & ~searches.mated).sum()),
        }
        rank1[name] = float(searches.correct[keep & searches.mated].mean())
    # one threshold for every set: each set's DIR against the FPIR of all impostor probes
    non_mated = Ranked(searches.top[~searches.mated])
    thresholds = [non_mated.threshold_for_rate(f) for f in CURVE_FARS]
    fpir = [non_mated.share_accepted(t) for t in thresholds]
    for name in names:
        keep = searches.where(None, name)
        curve[name] = (fpir, [_rates(searches, keep, t)[1] for t in thresholds])
    points = [_identification_point(searches, names, t, label=label) for label, t in given]
    return Identification(
        searches.enrolled, searches.impostors, len(usable), probes, at_fpir, rank1, points, curve
    )


def _mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# --- both ------------------------------------------------------------------------------------


@dataclass
class OpenSetResult:
    verification: Verification
    identification: Identification
    cross_view: bool = True

    def to_dict(self) -> dict:
        return {
            "score": "mean part cosine similarity (models.scoring.similarity), as the service",
            "cross_view": self.cross_view,
            "verification": self.verification.to_dict(),
            "identification": self.identification.to_dict(),
        }


def evaluate_open_set(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    fars: Sequence[float] = DEFAULT_FARS,
    given: Sequence[tuple[str, float]] = (),
    impostor_share: float = 0.5,
    splits: int = 10,
    seed: int = 0,
    cross_view: bool = True,
) -> OpenSetResult:
    """Verification and open-set identification of one set of subjects' embeddings [n, c, p].

    ``given``: (label, threshold) pairs measured in both, e.g. a model card's thresholds.
    """
    pairs = pair_scores(feats, subjects, conditions, views, cross_view)
    searches = search_splits(
        feats, subjects, conditions, views, impostor_share, splits, seed, cross_view
    )
    return OpenSetResult(
        verify_pairs(pairs, fars, given), identify_open_set(searches, fars, given), cross_view
    )


def _finite(value: float) -> float | None:
    """JSON-ready: NaN and infinities become ``None``."""
    return float(value) if math.isfinite(value) else None
