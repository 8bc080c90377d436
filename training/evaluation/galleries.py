"""Identification as the service does it, on galleries of held-out subjects (numpy only).

The service searches a probe against every enrolled sample, including samples seen from the
probe's own view, scores a subject by its best sample and names the best subject when the
decision allows. Here the same is done on CASIA-B subjects held out of training:

- a subject is enrolled with its nm-01–04 walks at ``k`` views (all 11, one, or k at random);
- probes are every walk of the probe sets (nm-05/06, bg-01/02, cl-01/02) at every view;
- a *stranger's search* is a probe of a subject who is not enrolled: it counts against the FPIR
  when the decision names anyone; an *enrolled walker's search* counts for the DIR when the
  decision names the walker.

Everything starts from :class:`ViewScores`: each probe's best score against each subject at each
view, computed once, from which any gallery of any size and views is a maximum over a subset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.card import GalleryCheck
from models.scoring import similarity
from training.evaluation.open_set import SET_NAMES, set_codes
from training.evaluation.protocol import GALLERY_CONDITIONS, PROBE_SETS, check_labels

KINDS = ("all", "one")
"""Gallery kinds: every subject at all 11 views, or every subject at one view (the same view
for all, a different view in each draw)."""


@dataclass(frozen=True)
class ViewScores:
    """best: float32 [probes, subjects, views], each probe's best score against each subject's
    gallery walks at each view (-inf where the subject has none); probe_subject: int [probes],
    an index into ``subjects`` (str [s]); probe_set: int8 [probes], an index into
    :data:`~training.evaluation.open_set.SET_NAMES`; views: str [v]."""

    best: np.ndarray
    probe_subject: np.ndarray
    probe_set: np.ndarray
    subjects: np.ndarray
    views: np.ndarray

    def restricted(self, subject_indices: np.ndarray) -> ViewScores:
        """The same scores among a subset of the subjects only (probes and gallery)."""
        keep = np.isin(self.probe_subject, subject_indices)
        renumber = np.full(len(self.subjects), -1)
        renumber[subject_indices] = np.arange(len(subject_indices))
        return ViewScores(
            self.best[keep][:, subject_indices],
            renumber[self.probe_subject[keep]],
            self.probe_set[keep],
            self.subjects[subject_indices],
            self.views,
        )


def view_scores(
    feats: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
) -> ViewScores:
    """In feats: [n, c, p] embeddings of held-out subjects and their [n] labels."""
    feats, subjects, conditions, views = check_labels(feats, subjects, conditions, views)
    probes = np.flatnonzero(np.isin(conditions, [c for cs in PROBE_SETS.values() for c in cs]))
    gallery = np.flatnonzero(np.isin(conditions, GALLERY_CONDITIONS))
    scores = similarity(feats[probes], feats[gallery])  # [m, g]
    people = np.unique(subjects)
    view_names = np.unique(views[gallery])
    best = np.full((len(probes), len(people), len(view_names)), -np.inf, np.float32)
    subject_of = np.searchsorted(people, subjects[gallery])
    view_of = np.searchsorted(view_names, views[gallery])
    for column, (s, v) in enumerate(zip(subject_of, view_of, strict=True)):
        np.maximum(best[:, s, v], scores[:, column], out=best[:, s, v])
    return ViewScores(
        best,
        np.searchsorted(people, subjects[probes]),
        set_codes(conditions[probes]),
        people,
        view_names,
    )


@dataclass(frozen=True)
class StrangerScores:
    """Stranger walks' best scores against enrolled subjects. scores: float32 [pairs];
    stranger, subject: int [pairs], who walked and whom they were compared with (indices into
    ``ViewScores.subjects``), for resampling people."""

    scores: np.ndarray
    stranger: np.ndarray
    subject: np.ndarray
    people: int


def stranger_scores(
    scores: ViewScores, views: int, draws: int = 11, seed: int = 0
) -> StrangerScores:
    """Every stranger walk's best score against every subject enrolled at ``views`` random
    views (up to ``draws`` view sets a subject)."""
    rng = np.random.default_rng(seed)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    count = len(scores.views)
    for subject in range(len(scores.subjects)):
        others = scores.probe_subject != subject
        strangers, who = scores.best[others, subject], scores.probe_subject[others]  # [m, v]
        for _ in range(1 if views >= count else draws):
            chosen = rng.choice(count, min(views, count), replace=False)
            best = strangers[:, chosen].max(axis=1)
            seen = np.isfinite(best)
            found.append((best[seen], who[seen], np.full(seen.sum(), subject)))
    if not found:
        empty = np.empty(0, np.int64)
        return StrangerScores(np.empty(0, np.float32), empty, empty, len(scores.subjects))
    best, who, subject = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return StrangerScores(best, who, subject, len(scores.subjects))


@dataclass(frozen=True)
class GallerySearches:
    """The searches of many random galleries of one size and kind. For strangers: top: float
    [m], the best subject's score; subject: int [m], the stranger (for resampling). For enrolled
    walkers: top, right (the best subject is the walker), set (NM/BG/CL code)."""

    size: int
    kind: str
    stranger_top: np.ndarray
    stranger_subject: np.ndarray
    genuine_top: np.ndarray
    genuine_right: np.ndarray
    genuine_set: np.ndarray

    @property
    def composition(self) -> dict[int, int]:
        """``{views: subjects}``, as ``models.identification`` takes a gallery."""
        return {11 if self.kind == "all" else 1: self.size}


def search_galleries(
    scores: ViewScores, size: int, kind: str, draws: int = 60, seed: int = 0
) -> GallerySearches:
    """Draw ``draws`` galleries of ``size`` subjects (the others are strangers) of ``kind``
    (:data:`KINDS`) and search every probe in each."""
    if kind not in KINDS:
        raise ValueError(f"gallery kind must be one of {KINDS}; got {kind!r}")
    people = len(scores.subjects)
    if not 1 <= size < people:
        raise ValueError(f"a gallery of {size} leaves no strangers among {people} subjects")
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {k: [] for k in ("st", "ss", "gt", "gr", "gs")}
    for draw in range(draws):
        enrolled = np.sort(rng.choice(people, size, replace=False))
        if kind == "all":
            best = scores.best[:, enrolled].max(axis=2)  # [m, size]
        else:
            best = scores.best[:, enrolled, draw % len(scores.views)]
        top = best.max(axis=1)
        named = enrolled[best.argmax(axis=1)]
        stranger = ~np.isin(scores.probe_subject, enrolled)
        walker = ~stranger & np.isfinite(top)
        parts["st"].append(top[stranger])
        parts["ss"].append(scores.probe_subject[stranger])
        parts["gt"].append(top[walker])
        parts["gr"].append(named[walker] == scores.probe_subject[walker])
        parts["gs"].append(scores.probe_set[walker])
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    return GallerySearches(
        size, kind, joined["st"], joined["ss"], joined["gt"], joined["gr"], joined["gs"]
    )


def check_threshold(
    searches: GallerySearches, threshold: float, bootstrap: int = 500, seed: int = 0
) -> GalleryCheck:
    """FPIR and DIR of ``searches`` at ``threshold``, with a 90 % interval of the FPIR over the
    stranger subjects (resampled with replacement: searches belong to people)."""
    named = searches.stranger_top >= np.float32(threshold)
    people, index = np.unique(searches.stranger_subject, return_inverse=True)
    per_person = np.bincount(index, weights=named, minlength=len(people))
    searches_of = np.bincount(index, minlength=len(people)).astype(np.float64)
    draws = np.random.default_rng(seed).multinomial(
        len(people), np.full(len(people), 1 / len(people)), size=bootstrap
    )
    resampled = (draws @ per_person) / (draws @ searches_of)
    right = searches.genuine_right & (searches.genuine_top >= np.float32(threshold))
    return GalleryCheck(
        subjects=searches.size,
        views=searches.kind,
        fpir=float(named.mean()),
        fpir_interval=tuple(float(v) for v in np.percentile(resampled, [5, 95])),
        dir=float(right.mean()),
        dir_per_condition={
            name: float(right[searches.genuine_set == code].mean())
            for code, name in enumerate(SET_NAMES)
            if (searches.genuine_set == code).any()
        },
        searches=len(named),
    )


def dir_at_fpir(searches: GallerySearches, fpirs: np.ndarray) -> np.ndarray:
    """DIR at each FPIR (the threshold at which that share of strangers' searches is named):
    float [len(fpirs)], for the DIR-against-FPIR figure."""
    ranked = np.sort(searches.stranger_top)
    out = []
    for rate in fpirs:
        allowed = int(np.floor(rate * len(ranked)))
        threshold = -np.inf if allowed >= len(ranked) else np.nextafter(ranked[-1 - allowed], 2)
        out.append(np.mean(searches.genuine_right & (searches.genuine_top >= threshold)))
    return np.asarray(out)


Rule = Callable[[dict[int, int]], float]
"""A decision rule: a gallery's composition ``{views: subjects}`` → the score threshold."""


GALLERY_SIZES = (5, 10, 24)
"""Gallery sizes ``gaitlab eval --open-set`` measures, besides every subject but one."""
CURVE_FPIRS = np.logspace(-3, 0, 49)


@dataclass(frozen=True)
class GalleryResult:
    """One gallery size and kind: the decision (when a rule was given) and the DIR-against-FPIR
    curve (each FPIR read at its own threshold: the best any rule could do on these searches)."""

    searches: GallerySearches
    decision: GalleryCheck | None
    dir_at_1: float
    curve: np.ndarray  # float [len(CURVE_FPIRS)]

    def to_dict(self) -> dict:
        return {
            "subjects": self.searches.size,
            "views": self.searches.kind,
            "strangers_searches": len(self.searches.stranger_top),
            "enrolled_searches": len(self.searches.genuine_top),
            "decision": None if self.decision is None else self.decision.model_dump(),
            "dir_at_fpir_1_percent": self.dir_at_1,
            "curve": {"fpir": CURVE_FPIRS.tolist(), "dir": self.curve.tolist()},
        }


def evaluate_galleries(
    scores: ViewScores,
    rule: Rule | None = None,
    sizes: Sequence[int] = GALLERY_SIZES,
    draws: int = 60,
    seed: int = 0,
) -> list[GalleryResult]:
    """Galleries of each size (and of every subject but one) of both kinds; ``rule`` (a
    composition → threshold, e.g. a card's stranger model at its FPIR) is the decision
    measured."""
    people = len(scores.subjects)
    wanted = sorted({s for s in (*sizes, people - 1) if 1 <= s < people})
    results = []
    for size in wanted:
        for kind in KINDS:
            searches = search_galleries(scores, size, kind, draws, seed)
            decision = (
                None if rule is None else check_threshold(searches, rule(searches.composition))
            )
            results.append(
                GalleryResult(
                    searches,
                    decision,
                    float(dir_at_fpir(searches, np.array([0.01]))[0]),
                    dir_at_fpir(searches, CURVE_FPIRS),
                )
            )
    return results


def format_galleries(results: list[GalleryResult], promise: float | None) -> str:
    """A table: per gallery, strangers named and walkers named right at the decision, and the
    DIR at 1 % FPIR of the best threshold for those searches."""
    head = "identification on galleries of held-out subjects (every probe condition and view)"
    lines = [head]
    if promise is not None:
        lines.append(f"decision: the card's stranger-rate curves at FPIR {100 * promise:g} %")
    lines.append(
        f"{'subjects':>8s} {'views':>5s}  {'named strangers %':>17s} {'90 %':>13s}"
        f"  {'DIR %':>6s} {'NM':>5s} {'BG':>5s} {'CL':>5s}  {'DIR@1%':>6s} (best threshold)"
    )
    for result in results:
        d = result.decision
        if d is None:
            decided = f"{'–':>17s} {'':>13s}  {'–':>6s} {'':>5s} {'':>5s} {'':>5s}"
        else:
            low, high = d.fpir_interval or (np.nan, np.nan)
            per = [100 * d.dir_per_condition.get(n, np.nan) for n in SET_NAMES]
            decided = (
                f"{100 * d.fpir:17.2f} {f'{100 * low:.2f}–{100 * high:.2f}':>13s}  "
                f"{100 * d.dir:6.1f} {per[0]:5.1f} {per[1]:5.1f} {per[2]:5.1f}"
            )
        lines.append(
            f"{result.searches.size:8d} {result.searches.kind:>5s}  {decided}  "
            f"{100 * result.dir_at_1:6.1f}"
        )
    return "\n".join(lines)


def plot_galleries(results: list[GalleryResult], path) -> None:
    """DIR against FPIR, one line per gallery size, all-view and one-view side by side; the
    decision's operating point marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(figure)
    panels = dict(zip(KINDS, figure.subplots(1, 2, sharey=True), strict=True))
    sizes = sorted({r.searches.size for r in results})
    colours = {size: f"C{i}" for i, size in enumerate(sizes)}
    for result in results:
        axes, size = panels[result.searches.kind], result.searches.size
        axes.plot(CURVE_FPIRS, result.curve, color=colours[size], label=f"{size} subjects")
        if result.decision is not None:
            axes.plot([result.decision.fpir], [result.decision.dir], "o", color=colours[size])
    for kind, axes in panels.items():
        axes.axvline(0.01, color="grey", lw=0.8, ls="--")
        axes.set_xscale("log")
        axes.set_xlim(CURVE_FPIRS[0], 1)
        axes.set_ylim(0, 1)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
        title = "enrolled at all 11 views" if kind == "all" else "enrolled at one view"
        axes.set(xlabel="strangers named (FPIR)", title=title)
    panels["all"].set_ylabel("enrolled walkers named right (DIR)")
    figure.suptitle("Identification by gallery size (dots: the decision at its promised FPIR)")
    figure.savefig(path, dpi=110)
