"""Training-step throughput: GaitLab's step against the original notebooks' step, same net, same
batch, one run.

    python bench/train_step.py [--config configs/convlstm_fusion_cpu.yaml] [--steps 5]

notebook: fp32, the triplet loss computed by a Python loop over anchors (each anchor's
          positives and negatives gathered and hinged in turn), as the notebooks did;
gaitlab:  the config's precision and memory format, the vectorised batch-all triplet loss.
Both include cross-entropy, backward and the SGD step. Prints seconds per step, frames per
second, the ratio, and how far apart the two losses are on the first batch (they compute the
same quantity).
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

from models.registry import create_model  # noqa: E402
from training.config import load_config  # noqa: E402
from training.losses import batch_all_triplet_loss, part_cross_entropy  # noqa: E402


def notebook_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float):
    """The notebooks' way: for each anchor, its own positives × negatives hinge, summed; then the
    sum over non-zero terms, per part, averaged over parts."""
    n, _, p = embeddings.shape
    total = embeddings.new_zeros(p)
    active = embeddings.new_zeros(p)
    for anchor in range(n):
        same = labels == labels[anchor]
        same[anchor] = False
        positives = embeddings[same]  # [n_pos, d, p]
        negatives = embeddings[labels != labels[anchor]]  # [n_neg, d, p]
        d_pos = (positives - embeddings[anchor]).pow(2).sum(1).clamp_min(1e-12).sqrt()  # [n_pos, p]
        d_neg = (negatives - embeddings[anchor]).pow(2).sum(1).clamp_min(1e-12).sqrt()  # [n_neg, p]
        hinge = (d_pos[:, None, :] - d_neg[None, :, :] + margin).relu()  # [n_pos, n_neg, p]
        total = total + hinge.sum((0, 1))
        active = active + (hinge > 0).sum((0, 1))
    return (total / active.clamp_min(1)).mean()


def step(model, optimizer, sils, labels, margin, smoothing, triplet_fn, autocast):
    started = time.perf_counter()
    with autocast():
        outputs = model(sils)
    triplet = triplet_fn(outputs["embeddings"].float(), labels, margin)
    loss = triplet + part_cross_entropy(outputs["logits"], labels, smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - started, loss.item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs/convlstm_fusion_cpu.yaml")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    args = parser.parse_args()
    config = load_config(args.config)
    p, k, s = config.sampler.subjects, config.sampler.sequences, config.data.frames
    if config.run.threads:
        torch.set_num_threads(config.run.threads)

    torch.manual_seed(0)
    sils = (torch.rand(p * k, s, 64, 44) > 0.5).float()
    labels = torch.arange(p).repeat_interleave(k)
    options = config.model.net_options(num_classes=p)
    initial = create_model(config.model.name, **options).state_dict()
    bf16 = config.run.precision == "bf16"

    def vectorised(embeddings, targets, margin):
        return batch_all_triplet_loss(embeddings, targets, margin)[0]

    variants = {
        "notebook (fp32, loop over anchors)": (notebook_triplet_loss, False, False),
        f"gaitlab ({config.run.precision}, channels_last={config.run.channels_last}, vectorised)": (
            vectorised,
            bf16,
            config.run.channels_last,
        ),
    }
    results = {}
    for name, (triplet_fn, use_bf16, channels_last) in variants.items():
        model = create_model(config.model.name, **options)
        model.load_state_dict(initial)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.optimizer.lr, momentum=0.9)

        def autocast(use_bf16=use_bf16):
            if use_bf16:
                return torch.autocast("cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()

        _, first_loss = step(model, optimizer, sils, labels, 0.2, 0.1, triplet_fn, autocast)
        times = [
            step(model, optimizer, sils, labels, 0.2, 0.1, triplet_fn, autocast)[0]
            for _ in range(args.steps)
        ]
        seconds = sum(times) / len(times)
        results[name] = (seconds, first_loss)
        print(f"{name:55s} {seconds:6.2f} s/step  {p * k * s / seconds:8.0f} frames/s", flush=True)

    (slow, slow_loss), (fast, fast_loss) = results.values()
    print(
        f"net {config.model.name} {options['channels']}, stem stride {options['stem_stride']}, "
        f"batch {p}x{k} sequences x {s} frames, {torch.get_num_threads()} threads"
    )
    print(f"speed-up gaitlab / notebook: {slow / fast:.2f}x")
    print(f"first-batch loss: notebook {slow_loss:.4f}, gaitlab {fast_loss:.4f}")
    with torch.no_grad():
        emb = torch.randn(p * k, 32, 8)
        print(
            "triplet loss, loop vs vectorised on the same fp32 embeddings: "
            f"{notebook_triplet_loss(emb, labels, 0.2).item():.6f} vs "
            f"{vectorised(emb, labels, 0.2).item():.6f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
