"""Training-step throughput of the CPU recipe's choices, side by side in one run.

    python bench/cpu_recipe.py [--steps 3] [--only SUBSTRING]

Each variant times forward + losses + backward + SGD step on random silhouettes (the step's cost
does not depend on the pixel values), after one warm-up step. Prints seconds per step and frames
per second, and the speed-up against the first variant (fp32, full resolution, 16 parts).
Close everything else first: on 2 cores a second job skews every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import models.layers.backbone as backbone  # noqa: E402
from models.registry import create_model  # noqa: E402
from training.losses import batch_all_triplet_loss, part_cross_entropy  # noqa: E402

NARROW = (16, 32, 64, 128)
# name: (net, options, P, K, frames, bf16, channels_last, stage strides)
VARIANTS = {
    "fp32, stem 1, 16 parts": ("convlstm_fusion", {}, 8, 8, 20, False, False, None),
    "+ channels-last": ("convlstm_fusion", {}, 8, 8, 20, False, True, None),
    "+ bf16": ("convlstm_fusion", {}, 8, 8, 20, True, False, None),
    "bf16 + channels-last": ("convlstm_fusion", {}, 8, 8, 20, True, True, None),
    "stem 2 (8 parts), fp32 + channels-last": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        8,
        8,
        20,
        False,
        True,
        None,
    ),
    "stem 2 (8 parts), bf16": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        8,
        8,
        20,
        True,
        False,
        None,
    ),
    "stem 2 (8 parts), bf16 + channels-last [recipe]": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        8,
        8,
        20,
        True,
        True,
        None,
    ),
    "recipe, 30 frames": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        8,
        8,
        30,
        True,
        True,
        None,
    ),
    "recipe, 10 frames": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        8,
        8,
        10,
        True,
        True,
        None,
    ),
    "recipe, P×K 8×16": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        8,
        16,
        20,
        True,
        True,
        None,
    ),
    "recipe, P×K 16×4": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8},
        16,
        4,
        20,
        True,
        True,
        None,
    ),
    "stem 2 keeping 16 parts (stages 1,2,1,1)": (
        "convlstm_fusion",
        {"stem_stride": 2},
        8,
        8,
        20,
        True,
        True,
        (1, 2, 1, 1),
    ),
    "recipe, wider 32/64/128/256": (
        "convlstm_fusion",
        {"stem_stride": 2, "parts": 8, "channels": (32, 64, 128, 256)},
        8,
        8,
        20,
        True,
        True,
        None,
    ),
    "baseline, recipe settings": (
        "baseline",
        {"stem_stride": 2, "parts": 8},
        8,
        8,
        20,
        True,
        True,
        None,
    ),
}


def time_step(net, options, p, k, frames, bf16, channels_last, strides, steps) -> float:
    saved = backbone.STAGE_STRIDES
    if strides:
        backbone.STAGE_STRIDES = strides
    try:
        model = create_model(net, **{"channels": NARROW, "num_classes": p, **options})
    finally:
        backbone.STAGE_STRIDES = saved
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sils = (torch.rand(p * k, frames, 64, 44) > 0.5).float()
    labels = torch.arange(p).repeat_interleave(k)
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    )
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with autocast():
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
    for name, (net, options, p, k, frames, bf16, cl, strides) in VARIANTS.items():
        if args.only and args.only not in name:
            continue
        seconds = time_step(net, options, p, k, frames, bf16, cl, strides, args.steps)
        rate = p * k * frames / seconds
        reference = reference or rate
        print(
            f"{name:50s} {seconds:6.2f} s/step {rate:7.0f} frames/s {rate / reference:5.1f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
