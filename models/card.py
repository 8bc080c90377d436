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
