"""Embedding speed: PyTorch eager vs ONNX Runtime fp32 vs the int8 variant, same model, same
real clips, one run.

    python bench/embed.py --checkpoint runs/…/latest.pt --onnx model.onnx [--int8 model.int8.onnx]
                          [--data /tmp/casia-b] [--subjects 051-074] [--threads 2]

Prints per-clip latency (one 30-frame clip; median and p90 of --repeats runs) and throughput
(clips/s, batches of 8 clips of 30 frames), and each variant's speed-up over PyTorch. When the
models have cards, prints their validation NM/BG/CL too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.engine import EmbeddingEngine  # noqa: E402
from training.checkpoint import model_from_checkpoint  # noqa: E402
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402
from training.export import OnnxEmbedder  # noqa: E402


def timings(embed, clips: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """Median and p90 seconds for one clip, and clips/s for batches of 8."""
    embed(clips[:1])  # warm-up
    single = []
    for i in range(repeats):
        started = time.perf_counter()
        embed(clips[i % len(clips)][None])
        single.append(time.perf_counter() - started)
    batches = [clips[i : i + 8] for i in range(0, len(clips) - 7, 8)]
    started = time.perf_counter()
    for batch in batches:
        embed(batch)
    throughput = 8 * len(batches) / (time.perf_counter() - started)
    return float(np.median(single)), float(np.percentile(single, 90)), throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--int8", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--subjects", default="051-074")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cache = SilhouetteCache.load(args.data, parse_subjects(args.subjects), progress=False)
    rng = np.random.default_rng(0)
    long = rng.choice(np.flatnonzero(cache.lengths >= 30), args.clips, replace=False)
    clips = np.stack([cache.sequence(i)[:30] for i in long])  # uint8 [clips, 30, 64, 44]

    wrapper = OnnxEmbedder(model_from_checkpoint(args.checkpoint)).eval()

    def torch_embed(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return wrapper(torch.from_numpy(batch)).numpy()

    variants = {"torch eager fp32": torch_embed}
    engines = {"onnxruntime fp32": EmbeddingEngine(args.onnx, "cpu", threads=args.threads)}
    if args.int8:
        engines["onnxruntime int8"] = EmbeddingEngine(args.int8, "cpu", threads=args.threads)
    variants.update({name: engine.embed for name, engine in engines.items()})

    print(f"{len(clips)} real clips of 30 frames from {args.subjects}, {args.threads} threads")
    print(f"{'variant':22s} {'p50 ms/clip':>12s} {'p90':>8s} {'clips/s @8':>11s} {'vs torch':>9s}")
    reference = None
    for name, embed in variants.items():
        p50, p90, rate = timings(embed, clips, args.repeats)
        reference = reference or rate
        print(
            f"{name:22s} {1000 * p50:12.1f} {1000 * p90:8.1f} {rate:11.1f} {rate / reference:8.2f}x"
        )
    for name, engine in engines.items():
        if engine.card and engine.card.validation:
            figures = engine.card.validation.rank1.get("euc", {})
            print(
                f"{name} card: validation {engine.card.validation.subjects} euc "
                + " ".join(f"{k} {v:.1f}" for k, v in figures.items())
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
