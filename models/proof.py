"""Every engine proves itself where it runs: it embeds its card's reference clips and must
reproduce the fp32 model's embeddings of them (numpy + ONNX Runtime, no torch).

Why: the same int8 file gave the right answers on a CPU with VNNI and wrong ones on a CPU without
(uint8 × int8 products saturating in ONNX Runtime's AVX2 kernels; issue 25). Nothing in the file
says which CPU it will meet, so the check runs where the model is served: at the service's start,
in its periodic self-test, on a model refresh, and before ``gaitlab eval`` and
``gaitlab gallery build`` embed anything.

The agreement of one clip is the service's own score between the engine's embedding and the
expected one (mean over parts of the cosine of part vectors, ``models.scoring``); an engine
passes when every clip reaches the card's bound (0.999 by default). An int8 variant that fails
is refused in favour of its fp32 model (:func:`open_proven`); an fp32 model that fails is refused
outright.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.card import ModelCard, ReferenceEmbeddings
from models.engine import EmbeddingEngine, EngineOptions, ModelContractError, read_card_file
from models.scoring import part_normalise

log = logging.getLogger("gaitlab.proof")

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Clips uint8 [T_i, 64, 44] → float32 [n, c, p] (an engine's ``embed_many``, or the live path)."""

_ISA_FLAGS = ("AVX2", "AVX512F", "AVX512VNNI", "AVXVNNI", "AMX_INT8")


def cpu_flags() -> str:
    """The instruction sets int8 kernels depend on, as this CPU reports them to programs
    (CPUID, read through numpy's own runtime dispatch, as ONNX Runtime reads it), e.g.
    ``"AVX2 AVX512F AVX512VNNI"``; ``"unknown"`` where numpy does not say."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return "unknown"
    found = [flag for flag in _ISA_FLAGS if features.get(flag)]
    return " ".join(found) if found else "none of " + ", ".join(_ISA_FLAGS)


def agreements(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """In got, expected: float32 [n, c, p]. Out float32 [n]: each clip's mean part cosine."""
    return (part_normalise(got) * part_normalise(expected)).sum(axis=1)


@dataclass(frozen=True)
class Proof:
    """One engine checked against its card's reference embeddings.

    ``passed`` is None when the card carries no reference (a model exported before proofs):
    such a model is served, unproven, and says so."""

    version: str
    variant: str
    device: str
    passed: bool | None
    agreement: float | None  # the worst clip's
    bound: float | None
    clips: int
    cpu: str
    checked_at: float

    @property
    def detail(self) -> str:
        if self.passed is None:
            return f"{self.version}: unproven (its card carries no reference embeddings)"
        verdict = "agrees with" if self.passed else "DISAGREES with"
        return (
            f"{self.version} ({self.variant}, {self.device}) {verdict} its fp32 reference: worst "
            f"agreement {self.agreement:.4f} over {self.clips} clips (needs {self.bound}); CPU "
            f"flags: {self.cpu}"
        )

    def public(self) -> dict:
        return {**asdict(self), "detail": self.detail}


def prove(engine: EmbeddingEngine, embed: Embed | None = None) -> Proof:
    """Embed ``engine``'s reference clips (with ``embed``: default the engine itself) and compare
    them with the card's expected embeddings."""
    card = engine.card
    reference = card.reference if card else None
    variant = card.variant if card else "unknown"
    unproven = Proof(engine.version, variant, engine.device, None, None, None, 0, cpu_flags(), 0.0)
    if reference is None:
        return unproven
    worst = worst_agreement(embed or engine.embed_many, reference)
    return Proof(
        engine.version,
        variant,
        engine.device,
        bool(worst >= reference.bound),  # NaN fails
        round(worst, 6),
        reference.bound,
        reference.clips_shape[0],
        cpu_flags(),
        time.time(),
    )


def worst_agreement(embed: Embed, reference: ReferenceEmbeddings) -> float:
    """The lowest agreement over the reference clips between ``embed``'s embeddings and the
    expected ones (NaN when an embedding is not finite)."""
    expected = reference.expected()
    got = embed(list(reference.clip_array()))
    if got.shape != expected.shape:
        raise ModelContractError(
            f"embeddings of shape {got.shape[1:]}, but the card's reference holds "
            f"{expected.shape[1:]}: the card is not this model's"
        )
    return float(agreements(got, expected).min()) if np.isfinite(got).all() else float("nan")


class EngineDisagreesError(ModelContractError):
    """A model whose engine, here, does not reproduce its card's reference embeddings."""


def require_proof(engine: EmbeddingEngine) -> Proof:
    """:func:`prove`, raising :class:`EngineDisagreesError` when the engine fails."""
    proof = prove(engine)
    if proof.passed is False:
        raise EngineDisagreesError(
            f"{proof.detail}: its answers on this machine would be wrong; use the fp32 model"
        )
    return proof


def fp32_sibling(path: Path, card: ModelCard | None) -> Path | None:
    """The fp32 model an int8 variant was quantised from, found beside it by the export's naming
    (``X.int8.onnx`` → ``X.onnx``) and checked by version; None when there is none."""
    if card is None or card.variant != "int8" or not path.name.endswith(".int8.onnx"):
        return None
    sibling = path.with_name(path.name.removesuffix(".int8.onnx") + ".onnx")
    sibling_card = read_card_file(sibling) if sibling.is_file() else None
    wanted = card.quantized_from or card.version.removesuffix("-int8")
    return sibling if sibling_card is not None and sibling_card.version == wanted else None


@dataclass
class Serving:
    """The engine chosen to serve, its proof, and the variant refused on the way (if any)."""

    engine: EmbeddingEngine
    proof: Proof
    refused: Proof | None = None

    @property
    def fallback_reason(self) -> str | None:
        if self.refused is None:
            return None
        return f"{self.refused.detail}; serving {self.engine.version} (fp32) instead"

    def public(self) -> dict:
        return {
            "proof": self.proof.public(),
            "refused": None if self.refused is None else self.refused.public(),
            "fallback_reason": self.fallback_reason,
        }


def open_proven(path: Path, options: EngineOptions | None = None) -> Serving:
    """Open ``path`` and prove it; an int8 variant that fails falls back to its fp32 model
    (:func:`fp32_sibling`), which must pass in turn. Raises :class:`EngineDisagreesError` when
    nothing that passes is left, with the figures that say why."""
    options = options or EngineOptions()
    engine = options.open(path)
    proof = prove(engine)
    if proof.passed is not False:
        return Serving(engine, proof)
    sibling = fp32_sibling(Path(path), engine.card)
    if sibling is None:
        raise EngineDisagreesError(f"{proof.detail}; refused, and no fp32 model beside it")
    log.error(
        "model refused on this machine: falling back to fp32",
        extra={"refused": proof.detail, "fallback": str(sibling)},
    )
    fallback = options.open(sibling)
    fallback_proof = require_proof(fallback)
    return Serving(fallback, fallback_proof, refused=proof)
