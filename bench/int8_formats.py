"""int8 formats side by side: each quantisation format of one fp32 model, its agreement with fp32
(here and on an emulated CPU without VNNI), its speed against fp32 in the same run, and its
rank-1 on held-out subjects.

    python bench/int8_formats.py [--model models/weights/gaitlab-default.onnx] [--data /tmp/casia-b]
                                 [--emulate EPYC-Milan] [--rank1] [--json out.json]

Each format is quantised as ``gaitlab export --int8`` does (64 clips of 30 frames from the
model's first 16 training subjects). Agreement: the service's score (mean part cosine) between a
variant's and fp32's embeddings of 24 real clips of the validation subjects and of the card's 4
reference clips; the worst clip is shown. ``--emulate CPU`` repeats the agreement under
``qemu-x86_64 -cpu CPU`` (Debian's qemu-user), which ONNX Runtime sees as that CPU (EPYC-Milan:
AVX2, no AVX-512, no VNNI); it also says whether each variant's embeddings there are bit for bit
the ones computed here. Speed: one 30-frame clip (median of 20 calls) and batches of 8, each
format timed in turn with fp32 over 5 rounds, 2 threads. ``--rank1``: the CASIA-B protocol on the
card's validation subjects, all frames (about a minute a variant). Pause other work first: the
speed ratios are only as good as the machine is quiet.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.engine import EmbeddingEngine  # noqa: E402
from models.proof import agreements, cpu_flags  # noqa: E402
from models.reference import reference_clips  # noqa: E402
from training.data.cache import SilhouetteCache  # noqa: E402
from training.data.subjects import parse_subjects  # noqa: E402
from training.embedding import embed_cache_onnx  # noqa: E402
from training.evaluation.protocol import evaluate  # noqa: E402
from training.export import calibration_clips  # noqa: E402
from training.quantize import FORMATS, quantize_int8  # noqa: E402

_EMBED = """
import sys, numpy as np
sys.path.insert(0, {repo!r})
from models.engine import EmbeddingEngine
from models.proof import cpu_flags
clips, out, *models = sys.argv[1:]
clips = np.load(clips, allow_pickle=False)
found = {{}}
for i, name in enumerate(models):
    found[str(i)] = EmbeddingEngine(name, device="cpu", threads=1, warmup=False).embed(clips)
np.savez(out, **found)
print(cpu_flags())
"""


def speed(engine: EmbeddingEngine, clips: np.ndarray) -> tuple[float, float]:
    """(ms for one clip, median of 20; clips/s in batches of 8)."""
    single = []
    for i in range(20):
        started = time.perf_counter()
        engine.embed(clips[i % len(clips)][None])
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(2):
        for first in range(0, 16, 8):
            engine.embed(clips[first : first + 8])
    return 1000 * float(np.median(single)), 32 / (time.perf_counter() - started)


def emulated(
    cpu: str, clips: np.ndarray, models: list[Path], scratch: Path
) -> tuple[str, list[np.ndarray]]:
    np.save(scratch / "clips.npy", clips)
    out = scratch / "emulated.npz"
    command = [shutil.which("qemu-x86_64") or "qemu-x86_64", "-cpu", cpu, sys.executable, "-c"]
    done = subprocess.run(
        [*command, _EMBED.format(repo=str(REPO)), str(scratch / "clips.npy"), str(out)]
        + [str(m) for m in models],
        capture_output=True,
        text=True,
        check=True,
    )
    found = np.load(out)
    return done.stdout.strip().splitlines()[-1], [found[str(i)] for i in range(len(models))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/weights/gaitlab-default.onnx")
    parser.add_argument("--data", type=Path, default=Path("/tmp/casia-b"))
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--emulate", default=None, help="a qemu CPU model, e.g. EPYC-Milan")
    parser.add_argument("--rank1", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    fp32 = EmbeddingEngine(args.model, device="cpu", threads=2)
    card = fp32.card
    subjects = card.validation.subjects
    cache = SilhouetteCache.load(args.data, parse_subjects(subjects), progress=False)
    rng = np.random.default_rng(0)
    picks = rng.choice(np.flatnonzero(cache.lengths >= 30), 24, replace=False)
    real = np.stack([cache.sequence(i)[:30] for i in picks])  # uint8 [24, 30, 64, 44]
    walkers = reference_clips()
    calibration = calibration_clips(args.data, card.training.recipe)

    scratch = Path(tempfile.mkdtemp(prefix="int8-formats-"))
    paths = {"fp32": args.model}
    for name in args.formats.split(","):
        paths[name] = quantize_int8(
            args.model, scratch / f"{name}.onnx", calibration, "silhouettes", FORMATS[name]
        )
    engines = {name: EmbeddingEngine(path, device="cpu", threads=2) for name, path in paths.items()}
    here_real = {name: e.embed(real) for name, e in engines.items()}
    here_walk = {name: e.embed(walkers) for name, e in engines.items()}
    rows = {
        name: {
            "agreement_real": float(agreements(here_real[name], here_real["fp32"]).min()),
            "agreement_reference": float(agreements(here_walk[name], here_walk["fp32"]).min()),
        }
        for name in engines
    }

    cpu = cpu_flags()
    if args.emulate:
        both = np.concatenate([real[:, :24], walkers])  # one length: one call per model
        emulated_cpu, found = emulated(args.emulate, both, list(paths.values()), scratch)
        here = {name: e.embed(both) for name, e in engines.items()}
        for (name, _), there in zip(paths.items(), found, strict=True):
            rows[name]["emulated_cpu"] = f"{args.emulate} ({emulated_cpu})"
            rows[name]["agreement_emulated"] = float(agreements(there, found[0]).min())
            rows[name]["emulated_equals_here"] = bool(np.array_equal(there, here[name]))

    for _ in range(5):  # rounds: each format, then fp32 again, so drift hits both alike
        for name, engine in engines.items():
            one, rate = speed(engine, real)
            rows[name].setdefault("ms_one", []).append(one)
            rows[name].setdefault("clips_per_s", []).append(rate)
    base_one = np.median(rows["fp32"]["ms_one"])
    base_rate = np.median(rows["fp32"]["clips_per_s"])
    for row in rows.values():
        row["ms_one"], row["clips_per_s"] = np.median(row["ms_one"]), np.median(row["clips_per_s"])
        row["speedup_one"] = base_one / row["ms_one"]
        row["speedup_batch"] = row["clips_per_s"] / base_rate

    if args.rank1:
        for name, engine in engines.items():
            feats = embed_cache_onnx(engine, cache, progress=False)
            result = evaluate(feats, cache.subjects, cache.conditions, cache.views, metric="euc")
            rows[name]["rank1_euc"] = {k: round(v, 2) for k, v in result.mean.items()}

    print(f"model {card.version}; CPU here: {cpu}; 24 real clips of {subjects} + 4 reference clips")
    header = f"{'format':20s} {'agree real':>10s} {'agree ref':>10s}"
    header += f" {'emulated':>9s} {'=here':>6s}" if args.emulate else ""
    header += f" {'ms/clip':>8s} {'x fp32':>7s} {'clips/s@8':>10s} {'x fp32':>7s}"
    header += "  rank-1 euc NM/BG/CL" if args.rank1 else ""
    print(header)
    for name, row in rows.items():
        line = f"{name:20s} {row['agreement_real']:10.4f} {row['agreement_reference']:10.4f}"
        if args.emulate:
            line += f" {row['agreement_emulated']:9.4f} {row['emulated_equals_here']!s:>6s}"
        line += f" {row['ms_one']:8.2f} {row['speedup_one']:7.2f}"
        line += f" {row['clips_per_s']:10.1f} {row['speedup_batch']:7.2f}"
        if args.rank1:
            line += "  " + " / ".join(f"{v:.1f}" for v in row["rank1_euc"].values())
        print(line)
    if args.emulate:
        print(f"emulated: {args.emulate}, as ONNX Runtime saw it: {rows['fp32']['emulated_cpu']}")
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu, "model": card.version, "rows": rows}, indent=2)
        )
    shutil.rmtree(scratch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
