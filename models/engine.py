"""The embedding engine: an exported GaitLab model run by ONNX Runtime (numpy, no torch).

The service and ``gaitlab eval`` both embed through it. It checks the model's input contract
when it loads (one input, ``uint8 [batch, frames, 64, 44]``; one output ``[batch, c, p]``) and
refuses anything else with :class:`ModelContractError`; picks the CUDA execution provider when
asked for (or on ``auto``) and available, the CPU otherwise, and says which it actually got;
sets its thread counts deliberately; and warms up with one real run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.batching import equal_length_batches
from models.card import METADATA_KEY, ModelCard, card_path
from models.contract import FRAME_HEIGHT, MODEL_WIDTH

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ModelContractError(ValueError):
    """A model file that is not a GaitLab embedding model, or breaks the input contract."""


def _check_contract(session: ort.InferenceSession, path: Path) -> tuple[str, str]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelContractError(
            f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}"
        )
    given, produced = inputs[0], outputs[0]
    shape = list(given.shape)
    if given.type != "tensor(uint8)" or len(shape) != 4 or shape[2:] != [FRAME_HEIGHT, MODEL_WIDTH]:
        raise ModelContractError(
            f"{path}: input {given.name!r} is {given.type} {shape}; a GaitLab model takes "
            f"uint8 [batch, frames, {FRAME_HEIGHT}, {MODEL_WIDTH}]"
        )
    if any(isinstance(d, int) for d in shape[:2]):
        raise ModelContractError(f"{path}: batch and frame axes must be dynamic, got {shape}")
    if len(produced.shape) != 3:
        raise ModelContractError(
            f"{path}: output {produced.name!r} has shape {produced.shape}; expected [batch, c, p]"
        )
    return given.name, produced.name


def read_card(session: ort.InferenceSession, path: Path) -> ModelCard | None:
    """The model card from the ONNX metadata, else from the file beside it, else ``None``."""
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None and card_path(path).exists():
        text = card_path(path).read_text()
    if text is None:
        return None
    try:
        return ModelCard.from_json(text)
    except ValueError as error:
        raise ModelContractError(f"{path}: unreadable model card: {error}") from error


def read_card_file(path: Path) -> ModelCard | None:
    """The card of the model file ``path`` without preparing it to run: from the file beside
    it, else from the ONNX metadata (a session with no graph optimisation)."""
    if card_path(path).exists():
        try:
            return ModelCard.from_json(card_path(path).read_text())
        except ValueError as error:
            raise ModelContractError(f"{path}: unreadable model card: {error}") from error
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=[CPU])
    except Exception as error:  # onnxruntime raises its own types for corrupt files
        raise ModelContractError(f"{path}: not a loadable ONNX model: {error}") from error
    return read_card(session, path)


@dataclass(frozen=True)
class EngineOptions:
    """How to run a model: device (``auto``, ``cpu``, ``cuda``), intra-op threads (``None``:
    the usable cores) and whether threads busy-wait within a run (``spin``)."""

    device: str = "auto"
    threads: int | None = None
    spin: bool = True

    def open(self, path: str | Path, warmup: bool = True) -> EmbeddingEngine:
        return EmbeddingEngine(path, self.device, self.threads, warmup, self.spin)


class EmbeddingEngine:
    """Embeds silhouette clips with an ONNX model.

    device: ``"auto"`` (CUDA if available), ``"cuda"`` (falls back to the CPU, and says so, when
    onnxruntime has no CUDA provider) or ``"cpu"``. threads: intra-op threads (default: the
    cores this process may use). spin: whether intra-op threads busy-wait between the operators of
    a run (ONNX Runtime's default; faster runs); they stop when the run returns either way.
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        threads: int | None = None,
        warmup: bool = True,
        spin: bool = True,
    ):
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda; got {device!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no model file at {self.path}")
        available = ort.get_available_providers()
        wants_cuda = device in ("auto", "cuda")
        providers = [CUDA, CPU] if wants_cuda and CUDA in available else [CPU]
        self.fallback_reason: str | None = None
        if device == "cuda" and CUDA not in available:
            self.fallback_reason = (
                "CUDA was requested but onnxruntime has no CUDA provider (install the gpu extra); "
                "running on the CPU"
            )
            log.warning(self.fallback_reason)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        # spinning speeds up the hand-overs between one run's operators; once the run returns
        # it only burns a core the rest of the process needs (README "Speed")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own types for corrupt files
            raise ModelContractError(f"{self.path}: not a loadable ONNX model: {error}") from error
        self.input_name, self.output_name = _check_contract(self.session, self.path)
        self.card = read_card(self.session, self.path)
        self.provider = self.session.get_providers()[0]
        self.threads = options.intra_op_num_threads
        self.spin = spin
        if warmup:
            self.embed(np.zeros((1, 4, FRAME_HEIGHT, MODEL_WIDTH), np.uint8))

    @property
    def device(self) -> str:
        """``"cuda"`` or ``"cpu"``: where embeddings are actually computed."""
        return "cuda" if self.provider == CUDA else "cpu"

    @property
    def version(self) -> str:
        return self.card.version if self.card else f"unversioned:{self.path.name}"

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """In clips: uint8 [n, frames, 64, 44]. Out float32 [n, c, p]."""
        clips = np.ascontiguousarray(clips, dtype=np.uint8)
        if clips.ndim != 4 or clips.shape[2:] != (FRAME_HEIGHT, MODEL_WIDTH) or 0 in clips.shape:
            raise ValueError(f"clips must be uint8 [n, frames, 64, 44]; got {clips.shape}")
        (out,) = self.session.run([self.output_name], {self.input_name: clips})
        return out

    def embed_many(
        self,
        clips: Sequence[np.ndarray],
        batch_size: int = 16,
        on_batch: Callable[[int], object] | None = None,
    ) -> np.ndarray:
        """Clips of different lengths (each uint8 [T_i, 64, 44]) → float32 [n, c, p].

        Clips of equal length are embedded together, ``batch_size`` at a time; none is padded.
        ``on_batch(k)`` is called after each batch of k clips (a progress bar's ``update``).
        """
        out: np.ndarray | None = None
        for chunk in equal_length_batches(np.array([len(c) for c in clips]), batch_size):
            feats = self.embed(np.stack([clips[i] for i in chunk]))
            if out is None:
                out = np.empty((len(clips), *feats.shape[1:]), np.float32)
            out[chunk] = feats
            if on_batch is not None:
                on_batch(len(chunk))
        if out is None:
            raise ValueError("no clips to embed")
        return out
