"""Helpers shared by tests: real frames from a pkl tree, raw canvases, overlap measures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.data.casia_b import find_sequences, read_sequence

RAW_HEIGHT, RAW_WIDTH = 240, 320  # raw CASIA-B frames


def real_aligned_frames(
    tree: Path, count: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``count`` real aligned frames, uint8 [count, 64, 64], drawn across sequences of ``tree``."""
    rng = rng or np.random.default_rng(0)
    files = find_sequences(tree).files
    picks = rng.choice(len(files), size=count, replace=len(files) < count)
    frames = []
    for index in picks:
        sequence = read_sequence(files[index].path)
        frames.append(sequence[rng.integers(len(sequence))])
    return np.stack(frames)


def paste_into_canvas(aligned: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An aligned frame as a raw CASIA-B mask: scaled by 1.5–3.5, binarised to 0/255 and pasted
    at a random position into a 240×320 canvas (the whole frame fits)."""
    size = round(64 * rng.uniform(1.5, 3.5))
    big = cv2.resize(aligned, (size, size), interpolation=cv2.INTER_LINEAR)
    binary = np.where(big > 127, 255, 0).astype(np.uint8)
    canvas = np.zeros((RAW_HEIGHT, RAW_WIDTH), np.uint8)
    top = rng.integers(0, RAW_HEIGHT - size + 1)
    left = rng.integers(0, RAW_WIDTH - size + 1)
    canvas[top : top + size, left : left + size] = binary
    return canvas


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the foregrounds (values > 127) of two frames."""
    fa, fb = a > 127, b > 127
    union = np.logical_or(fa, fb).sum()
    return float(np.logical_and(fa, fb).sum() / union) if union else 1.0


def toy_model(
    path: Path, threshold: float = 0.95, version: str = "toy-1", negate: bool = False
) -> Path:
    """A small real ONNX embedding model (no training): the mean frame of a clip, cut into 8
    horizontal parts, ``[batch, 352, 8]``; with a model card whose 1 % FAR threshold is
    ``threshold``. Identical clips score 1.0; different silhouettes score lower. ``negate``: the
    same embedding times -1, so mixing its embeddings with the plain model's scores -1."""
    import onnx
    from onnx import TensorProto, helper

    from models.card import METADATA_KEY, EmbeddingContract, ModelCard, Threshold, TrainingRecord

    sils = helper.make_tensor_value_info(
        "silhouettes", TensorProto.UINT8, ["batch", "frames", 64, 44]
    )
    out = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 352, 8])
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, 8, 352])
    nodes = [
        helper.make_node("Cast", ["silhouettes"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1], keepdims=0),  # [b, 64, 44]
        helper.make_node("Reshape", ["mean", "shape"], ["parts"]),  # [b, 8, 352]
        helper.make_node(
            "Transpose", ["parts"], ["transposed" if negate else "embeddings"], perm=[0, 2, 1]
        ),
    ]
    if negate:
        nodes.append(helper.make_node("Neg", ["transposed"], ["embeddings"]))
    graph = helper.make_graph(nodes, "toy", [sils], [out], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    card = ModelCard(
        name="toy",
        version=version,
        net="toy",
        net_options={},
        embedding=EmbeddingContract(shape=["batch", 352, 8]),
        training=TrainingRecord(
            subjects="none", config_name="toy", iterations=0, wall_time_s=0, recipe={}
        ),
        thresholds=[Threshold(far=0.01, score=threshold, measured_far=0.01, tar=1.0)],
    )
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card.to_json()
    onnx.save(model, str(path))
    return path


def with_reference(
    path: Path,
    out: Path | None = None,
    wrong: bool = False,
    variant: str = "fp32",
    version: str | None = None,
    quantized_from: str | None = None,
) -> Path:
    """A copy of model ``path`` (default: in place) whose card carries reference embeddings of
    its own (``models.proof``): right ones, or ``wrong`` ones (negated: agreement -1), as a
    variant that would be wrong on this machine; ``variant``, ``version`` and
    ``quantized_from`` are set on the card as given."""
    from models.card import ReferenceEmbeddings
    from models.engine import EmbeddingEngine
    from models.reference import reference_clips
    from training.export import write_with_card

    engine = EmbeddingEngine(path, device="cpu", warmup=False)
    clips = reference_clips()
    expected = engine.embed_many(list(clips)) * (-1 if wrong else 1)
    card = engine.card.model_copy(
        update={
            "reference": ReferenceEmbeddings.of(clips, expected),
            "variant": variant,
            "version": version or engine.card.version,
            "quantized_from": quantized_from,
        }
    )
    write_with_card(path, out or path, card)
    return out or path


def with_identification(path: Path, centre: float = 0.9, scale: float = 0.01) -> Path:
    """Model ``path`` (in place) with identification curves in its card: a subject enrolled at
    ``k`` views is reached by ``min(1, k * 5 % * exp(-(s - centre) / scale))`` of strangers, and
    one pair by ``5 % * exp(…)``. Made up, for a toy model: what matters is the arithmetic."""
    import numpy as np

    from models.card import IdentificationCalibration, StrangerCurve
    from models.engine import EmbeddingEngine
    from training.export import write_with_card

    def curve(views: int) -> StrangerCurve:
        scores = np.linspace(centre - 0.2, centre + 0.05, 26)
        rates = np.minimum(1.0, views * 0.05 * np.exp(-(scores - centre) / scale))
        return StrangerCurve(
            views=views,
            scores=scores.tolist(),
            rates=rates.tolist(),
            tail_score=float(scores[-1]),
            tail_rate=float(rates[-1]),
            tail_scale=scale,
            pairs=1_000_000,
        )

    card = EmbeddingEngine(path, device="cpu", warmup=False).card
    found = IdentificationCalibration(
        subjects="none",
        subject_count=0,
        curves=[curve(k) for k in range(1, 12)],
        level=0.8,
        pair_curve=curve(1),
        measured_up_to=0,
    )
    write_with_card(path, path, card.model_copy(update={"identification": found}))
    return path


def toys_with_a_bad_int8(folder: Path) -> tuple[Path, Path]:
    """``toy.onnx`` (fp32, with its reference) and ``toy.int8.onnx`` beside it: an int8 variant of
    it whose reference it does not reproduce, as saturating kernels did on CPUs without VNNI
    (``models.proof``: it gives way to ``toy.onnx``)."""
    fp32 = with_reference(toy_model(folder / "toy.onnx"))
    int8 = with_reference(
        toy_model(folder / "source.onnx"),
        folder / "toy.int8.onnx",
        wrong=True,
        variant="int8",
        version="toy-1-int8-00000000",
        quantized_from="toy-1",
    )
    return fp32, int8
