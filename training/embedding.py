"""Embedding whole sequences with a trained net (torch), for evaluation.

Sequences are grouped by length and embedded ``batch_size`` at a time, so no sequence is padded
or cut: every frame is used, as the protocol asks (unless ``max_frames`` caps them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from models.batching import equal_length_batches
from training.data.cache import SilhouetteCache

if TYPE_CHECKING:
    from models.engine import EmbeddingEngine


@torch.inference_mode()
def embed_cache(
    model: torch.nn.Module,
    cache: SilhouetteCache,
    device: torch.device,
    batch_size: int = 16,
    max_frames: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings of every sequence of ``cache``: float32 [S, d, p], in cache order.

    ``max_frames`` keeps only the first frames of longer sequences (for quick validation).
    """
    was_training = model.training
    model.eval()
    lengths = cache.lengths if max_frames is None else np.minimum(cache.lengths, max_frames)
    feats: np.ndarray | None = None
    bar = tqdm(total=len(cache), desc="embedding", unit="seq", disable=not progress, leave=False)
    for chunk in equal_length_batches(lengths, batch_size):
        length = lengths[chunk[0]]
        clips = np.stack([cache.sequence(i)[:length] for i in chunk])  # [b, T, 64, 44]
        sils = torch.from_numpy(clips).to(device).float().div_(255)
        out = model.embed(sils).float().cpu().numpy()  # [b, d, p]
        if feats is None:
            feats = np.empty((len(cache), *out.shape[1:]), np.float32)
        feats[chunk] = out
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return feats if feats is not None else np.empty((0, 0, 0), np.float32)


def embed_cache_onnx(
    engine: EmbeddingEngine,
    cache: SilhouetteCache,
    batch_size: int = 16,
    progress: bool = True,
    label: str = "embedding",
) -> np.ndarray:
    """Every sequence of ``cache``, all frames, through an exported model: float32 [S, c, p]."""
    clips = [cache.sequence(i) for i in range(len(cache))]
    with tqdm(total=len(clips), desc=label, unit="seq", disable=not progress, leave=False) as bar:
        return engine.embed_many(clips, batch_size, on_batch=bar.update)
