"""Training-step throughput of the CPU recipe's choices, side by side in one run.

    python bench/cpu_recipe.py [--steps 3] [--only SUBSTRING]

Each variant times forward + losses + backward + SGD step on random silhouettes (the step's cost
does not depend on the pixel values), after one warm-up step. Prints seconds per step and frames
per second, and the speed-up against the first variant (fp32, full resolution, 16 parts).
Close everything else first: on 2 cores a second job skews every figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import models.layers.backbone as backbone  # noqa: E402
from models.registry import create_model  # noqa: E402
from training.losses import batch_all_triplet_loss, part_cross_entropy  # noqa: E402

NARROW = (16, 32, 64, 128)
STEM2 = {"stem_stride": 2, "parts": 8}


@dataclass(frozen=True)
class Variant:
    options: dict = field(default_factory=dict)
    net: str = "convlstm_fusion"
    subjects: int = 8  # P
    sequences: int = 8  # K
    frames: int = 20
    bf16: bool = False
    channels_last: bool = False
    stage_strides: tuple[int, ...] | None = None
    compiled: bool = False  # torch.compile (inductor); its compile time is in the warm-up step


VARIANTS = {
    "fp32, stem 1, 16 parts": Variant(),
    "+ channels-last": Variant(channels_last=True),
    "+ bf16": Variant(bf16=True),
    "bf16 + channels-last": Variant(bf16=True, channels_last=True),
    "stem 2 (8 parts), fp32 + channels-last": Variant(STEM2, channels_last=True),
    "stem 2 (8 parts), bf16": Variant(STEM2, bf16=True),
    "stem 2 (8 parts), bf16 + channels-last [recipe]": Variant(
        STEM2, bf16=True, channels_last=True
    ),
    "recipe, 30 frames": Variant(STEM2, frames=30, bf16=True, channels_last=True),
    "recipe, 10 frames": Variant(STEM2, frames=10, bf16=True, channels_last=True),
    "recipe, P×K 8×16": Variant(STEM2, sequences=16, bf16=True, channels_last=True),
    "recipe, P×K 16×4": Variant(STEM2, subjects=16, sequences=4, bf16=True, channels_last=True),
    "stem 2 keeping 16 parts (stages 1,2,1,1)": Variant(
        {"stem_stride": 2}, bf16=True, channels_last=True, stage_strides=(1, 2, 1, 1)
    ),
    "recipe, wider 32/64/128/256": Variant(
        {**STEM2, "channels": (32, 64, 128, 256)}, bf16=True, channels_last=True
    ),
    "recipe, torch.compile": Variant(STEM2, bf16=True, channels_last=True, compiled=True),
    "baseline, recipe settings": Variant(STEM2, net="baseline", bf16=True, channels_last=True),
    "baseline, torch.compile": Variant(
        STEM2, net="baseline", bf16=True, channels_last=True, compiled=True
    ),
}


def time_step(variant: Variant, steps: int) -> float:
    """Mean seconds of one training step of ``variant`` (after a warm-up step)."""
    saved = backbone.STAGE_STRIDES
    if variant.stage_strides:
        backbone.STAGE_STRIDES = variant.stage_strides
    try:
        options = {"channels": NARROW, "num_classes": variant.subjects, **variant.options}
        model = create_model(variant.net, **options)
    finally:
        backbone.STAGE_STRIDES = saved
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if variant.compiled:
        model = torch.compile(model)
    batch = variant.subjects * variant.sequences
    sils = (torch.rand(batch, variant.frames, 64, 44) > 0.5).float()
    labels = torch.arange(variant.subjects).repeat_interleave(variant.sequences)
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.bf16)
        with autocast:
            outputs = model(sils)
        loss = batch_all_triplet_loss(outputs["embeddings"], labels)[0]
        loss = loss + part_cross_entropy(outputs["logits"], labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return sum(times[1:]) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", default=None, help="run the variants whose name contains this")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    reference = None
    for name, variant in VARIANTS.items():
        if args.only and args.only not in name:
            continue
        seconds = time_step(variant, args.steps)
        rate = variant.subjects * variant.sequences * variant.frames / seconds
        reference = reference or rate
        print(
            f"{name:50s} {seconds:6.2f} s/step {rate:7.0f} frames/s {rate / reference:5.1f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
