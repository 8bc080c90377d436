"""The model card: what an exported model is, what it expects, how good it is, and where to
draw the line between "same person" and "unknown". Stored inside the ONNX file (metadata key
``gaitlab.model_card``) and beside it as ``<file>.card.json``; numpy/pydantic only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.contract import FRAME_HEIGHT, MODEL_WIDTH
from models.identification import StrangerModel, StrangerRates
from models.reference import decode_array, decode_clips, encode_array, encode_clips

METADATA_KEY = "gaitlab.model_card"
CARD_SUFFIX = ".card.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputContract(_Strict):
    name: str = "silhouettes"
    dtype: str = "uint8"
    shape: list[str | int] = ["batch", "frames", FRAME_HEIGHT, MODEL_WIDTH]
    value_range: tuple[int, int] = (0, 255)
    frame_order: str = "temporal (first frame first)"
    normalisation: str = (
        "models.silhouette.normalise_clip: OpenGait CASIA-B alignment to 64x64, 10 columns cut "
        "from each side"
    )


class EmbeddingContract(_Strict):
    name: str = "embeddings"
    shape: list[str | int]  # ["batch", c, p]
    metric: str = "cos"
    score: str = (
        "mean over parts of the cosine similarity of part vectors, in [-1, 1] "
        "(models.scoring.similarity); higher is more alike"
    )


class Threshold(_Strict):
    """Accept a match when its score >= ``score``; measured on the calibration pairs."""

    far: float = Field(
        description="target false accept rate, per pair: one probe clip against one gallery "
        "sample (a subject with several samples, or a search of many subjects, accepts a "
        "stranger more often)"
    )
    score: float
    measured_far: float = Field(description="false accept rate at ``score`` on the pairs")
    tar: float = Field(description="true accept rate at ``score`` on the pairs")
    far_per_condition: dict[str, float] = Field(
        {}, description="probe set (NM/BG/CL) → false accept rate of its pairs at ``score``"
    )
    tar_per_condition: dict[str, float] = Field(
        {}, description="probe set (NM/BG/CL) → true accept rate of its pairs at ``score``"
    )
    far_interval: tuple[float, float] | None = Field(
        None,
        description="where the false accept rate at ``score`` could fall on another set of as "
        "many subjects: the central 90 % of a bootstrap over the calibration subjects; none "
        "when they were fewer than 10 (too few to say)",
    )
    tar_interval: tuple[float, float] | None = Field(
        None, description="the same interval for the true accept rate"
    )
    far_same_view: float | None = Field(
        None,
        description="false accept rate at ``score`` of pairs seen from the same view (the "
        "calibration pairs, and ``measured_far``, are across views)",
    )


DECISION_FAR = 0.01
"""The false accept rate whose threshold the service decides with unless a request names one."""

OWN_MEASUREMENT = "this model, on held-out subjects"
OWN_WEIGHTS = "this model's own weights, on subjects it never trained on"

GALLERY = "nm-01-04, every view"
PROBES = {"NM": "nm-05/06", "BG": "bg-01/02", "CL": "cl-01/02"}
CALIBRATION_PAIRS = (
    "every probe sequence (nm-05/06, bg-01/02, cl-01/02) against every gallery sequence "
    "(nm-01-04) of another view, all frames; genuine = same subject"
)


class ValidationResult(_Strict):
    """Rank-1 accuracy on validation subjects, both distances. ``genuine_pairs`` and
    ``impostor_pairs`` are kept for cards written before :class:`Calibration` existed."""

    subjects: str
    source: str = OWN_MEASUREMENT
    protocol: str = "CASIA-B: gallery nm-01-04, identical views excluded, all frames"
    rank1: dict[str, dict[str, float]]  # metric → {"NM": …, "BG": …, "CL": …}
    subject_count: int | None = None
    gallery: str = GALLERY
    probes: dict[str, str] = PROBES
    gallery_sequences: int | None = None
    probe_sequences: dict[str, int] = {}
    genuine_pairs: int | None = None
    impostor_pairs: int | None = None


class StrangerCurve(_Strict):
    """How often strangers reach a score against a subject enrolled at ``views`` views: the share
    ``rates[i]`` of stranger walks whose best score against the subject's samples is at least
    ``scores[i]``; above ``tail_score`` the share falls as
    ``tail_rate * exp(-(score - tail_score) / tail_scale)`` (``models.identification``)."""

    views: int = Field(ge=1, le=11, description="views a subject is enrolled at (1 for a pair)")
    scores: list[float]
    rates: list[float]
    tail_score: float
    tail_rate: float
    tail_scale: float
    pairs: int = Field(description="stranger walk × subject pairs measured")

    def rates_model(self) -> StrangerRates:
        return StrangerRates(
            self.scores, self.rates, self.tail_score, self.tail_rate, self.tail_scale
        )


class GalleryCheck(_Strict):
    """The decision rule measured on held-out galleries of one size and kind."""

    subjects: int = Field(description="enrolled subjects")
    views: str = Field(description="'all' (nm-01-04 at all 11 views) or 'one' (one view)")
    fpir: float = Field(description="share of strangers' searches that named someone")
    fpir_interval: tuple[float, float] | None = Field(
        None,
        description="a central 90 % range of the FPIR: of one set of galleries, over a bootstrap "
        "of its strangers; of a card's check pooled over random halvings, the 5th to 95th "
        "percentile of the halvings' FPIRs (how much one population of strangers differs)",
    )
    dir: float = Field(description="share of enrolled walkers' searches named right")
    dir_per_condition: dict[str, float] = {}
    searches: int = Field(description="strangers' searches measured")


class IdentificationCalibration(_Strict):
    """The identification decision's stranger-rate curves and how they were measured."""

    source: str = OWN_WEIGHTS
    subjects: str
    subject_count: int
    curves: list[StrangerCurve]
    level: float = Field(
        description="the curves are this quantile of the stranger rate over a bootstrap of the "
        "people measured (an upper bound for another population like them)",
    )
    fit: str = Field(
        "empirical",
        description="how the rates were drawn from the strangers' scores: 'empirical', the "
        "scores' own tail; 'gaussian', a normal fit on the log-distance scale -log(1 - score); "
        "'larger', the larger of the two at every score (the per-pair curve is always the "
        "scores' own tail)",
    )
    pair_curve: StrangerCurve | None = Field(
        None,
        description="the same for one pair (a stranger's walk against one sample, any view): "
        "/verify's estimate of the false accept rate at a score",
    )
    fpir: float = Field(0.01, description="the FPIR /identify decides at unless asked otherwise")
    measured_up_to: int = Field(
        description="the largest gallery (subjects) the rule was measured on; beyond it the "
        "curves' tails carry it"
    )
    checks: list[GalleryCheck] = []

    def model(self) -> StrangerModel:
        return StrangerModel({c.views: c.rates_model() for c in self.curves})


class FoldRecord(_Strict):
    """One fold model of a cross-fit: trained without ``held_out``, measured on it with its own
    weights (its card's figures)."""

    version: str
    trained_on: str
    held_out: str
    subject_count: int
    rank1: dict[str, dict[str, float]]  # metric → {"NM": …, "BG": …, "CL": …}
    thresholds: dict[str, float]  # FAR (as text, e.g. "0.01") → score
    identification: IdentificationCalibration | None = None


class TransferRecord(_Strict):
    """Decisions derived from some folds, measured on another fold's model and subjects."""

    derived_from: list[str]  # fold versions
    measured_on: str  # a fold version
    far: dict[str, float] = {}  # target FAR (text) → false accept rate of cross-view pairs
    far_same_view: dict[str, float] = {}  # target FAR (text) → of same-view pairs
    tar: dict[str, float] = {}  # target FAR (text) → true accept rate of cross-view pairs
    galleries: list[GalleryCheck] = []  # the identification decision at its FPIR


class CrossFit(_Strict):
    """How a model trained on every subject got figures and decisions: from fold models of the
    same recipe, each held out of some subjects, and how well their decisions transfer."""

    method: str = (
        "validation: the folds' rank-1 on their held-out subjects (mean; not this model's); "
        "thresholds: the mean of the folds' scores at each FAR, their measured rates the mean "
        "(and interval the range) of the leave-one-out transfers; identification curves: at "
        "each score the mean of the folds' stranger rates"
    )
    folds: list[FoldRecord]
    pairwise: list[TransferRecord] = Field(
        description="each fold's own decisions on each other fold (i → j, i ≠ j)"
    )
    leave_one_out: list[TransferRecord] = Field(
        description="decisions derived as this card's are, from all folds but one, on that one"
    )


class Calibration(_Strict):
    """Where the thresholds come from: which weights, which subjects, which pairs."""

    source: str = OWN_WEIGHTS
    subjects: str
    subject_count: int
    pairs: str = CALIBRATION_PAIRS
    genuine_pairs: int
    impostor_pairs: int
    score: str = "mean part cosine similarity (models.scoring.similarity), the service's score"


PROOF_BOUND = 0.999
"""The least agreement (mean part cosine with the fp32 model's embedding) an engine must reach on
every reference clip to serve a model (``models.proof``)."""


class ReferenceEmbeddings(_Strict):
    """Reference clips and the fp32 model's embeddings of them, computed at export. Every engine
    that serves the model (fp32 or int8, on whatever CPU or GPU) must reproduce them to within
    ``bound`` before it answers a request (``models.proof``)."""

    source: str = "synthetic walkers (models.reference.reference_clips), embedded by fp32 at export"
    clips_shape: tuple[int, int, int, int]  # [n, frames, 64, 44]
    clips: str = Field(repr=False, description="the 0/255 clips' bits, base64")
    embeddings_shape: tuple[int, int, int]  # [n, c, p]
    embeddings: str = Field(
        repr=False, description="the fp32 model's embeddings, float32 little-endian, base64"
    )
    bound: float = Field(PROOF_BOUND, gt=0, le=1)

    @classmethod
    def of(
        cls, clips: np.ndarray, embeddings: np.ndarray, bound: float = PROOF_BOUND
    ) -> ReferenceEmbeddings:
        """In clips: uint8 [n, T, 64, 44] (0/255); embeddings: float32 [n, c, p]."""
        return cls(
            clips_shape=clips.shape,
            clips=encode_clips(clips),
            embeddings_shape=embeddings.shape,
            embeddings=encode_array(embeddings),
            bound=bound,
        )

    def clip_array(self) -> np.ndarray:
        """uint8 [n, T, 64, 44]."""
        return decode_clips(self.clips, self.clips_shape)

    def expected(self) -> np.ndarray:
        """float32 [n, c, p]."""
        return decode_array(self.embeddings, self.embeddings_shape)


class TrainingRecord(_Strict):
    data: str = "CASIA-B (OpenGait pkl), research use only"
    subjects: str
    config_name: str
    iterations: int
    wall_time_s: float
    recipe: dict


class ModelCard(_Strict):
    name: str
    version: str = Field(description="net name + content hash of the model's weights and graph")
    variant: Literal["fp32", "int8"] = "fp32"
    net: str
    net_options: dict
    input: InputContract = InputContract()
    embedding: EmbeddingContract
    training: TrainingRecord
    validation: ValidationResult | None = None
    thresholds: list[Threshold] = []
    calibration: Calibration | None = Field(
        None, description="how ``thresholds`` were measured (None on cards older than this field)"
    )
    identification: IdentificationCalibration | None = Field(
        None,
        description="stranger-rate curves for identification decisions at a promised FPIR "
        "(None: /identify decides with the per-pair threshold, and says so)",
    )
    cross_fit: CrossFit | None = Field(
        None,
        description="where a model trained on every subject got its figures and decisions: "
        "fold models of the same recipe, and the measured transfer of their decisions",
    )
    licence: str = (
        "Research derivative of the CASIA Gait Database (Dataset B), CBSR, Institute of "
        "Automation, Chinese Academy of Sciences: for research use only."
    )
    contract_version: int = 1
    reference: ReferenceEmbeddings | None = Field(
        None,
        description="clips and the fp32 model's embeddings of them: what any engine serving this "
        "model must reproduce (None on cards older than this field: such a model is unproven)",
    )
    quantization: str | None = Field(
        None, description="an int8 variant's quantisation format (None: not quantised)"
    )
    quantized_from: str | None = Field(
        None, description="an int8 variant's fp32 model (its version): where to fall back"
    )
    cpu_default: str | None = Field(
        None,
        description="an int8 variant's case for being served by default on a CPU: its measured "
        "accuracy beside fp32's (None: fp32 is served by default)",
    )

    def threshold_at(self, far: float) -> Threshold | None:
        return next((t for t in self.thresholds if abs(t.far - far) < 1e-12), None)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def public(self) -> dict:
        """The card as JSON values without the reference clips and embeddings (about 90 KB)."""
        return self.model_dump(mode="json", exclude={"reference"})

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.model_validate(json.loads(text))


def card_path(model_path: str | Path) -> Path:
    """``model.onnx`` → ``model.onnx.card.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + CARD_SUFFIX)
