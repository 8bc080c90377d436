"""training.quantize on a CPU without VNNI, emulated: the shipped int8 format agrees with fp32
there, and the first shipped format (plain U8S8) does not, which the proof catches.

ONNX Runtime picks its int8 kernels from the CPU's features (CPUID), so the CPU this suite runs
on decides which kernels a test exercises. ``qemu-x86_64 -cpu EPYC-Milan`` (Debian's qemu-user)
runs the same Python and ONNX Runtime on an emulated CPU with AVX2 and no AVX-512 or VNNI: the
CPU kind on which the first int8 variant lost 36 rank-1 points (issue 25).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.default import DEFAULT_INT8, DEFAULT_MODEL
from models.engine import EmbeddingEngine, read_card_file
from models.proof import agreements, prove
from models.reference import walker
from training.export import write_with_card
from training.quantize import FORMATS, quantize_int8

REPO = Path(__file__).resolve().parents[2]
EMULATOR = shutil.which("qemu-x86_64")
CPU_WITHOUT_VNNI = "EPYC-Milan"  # AVX2, FMA; no AVX-512, no VNNI

# Run under emulation: embed CLIPS with each model; print the proofs and save the embeddings.
_EMULATED = """
import json, sys
import numpy as np
from models.engine import EmbeddingEngine
from models.proof import cpu_flags, prove
clips, out, *models = sys.argv[1:]
clips = np.load(clips)
report = {"cpu": cpu_flags(), "proofs": {}}
embeddings = {}
for name in models:
    engine = EmbeddingEngine(name, device="cpu", threads=1, warmup=False)
    report["proofs"][name] = prove(engine).public()
    embeddings[str(len(embeddings))] = engine.embed(clips)
np.savez(out, **embeddings)
print(json.dumps(report))
"""

needs_emulator = pytest.mark.skipif(
    EMULATOR is None or platform.machine() != "x86_64" or not DEFAULT_MODEL.is_file(),
    reason="needs qemu-x86_64 (Debian's qemu-user) on x86_64 and the shipped model",
)


def calibration_walkers() -> list[np.ndarray]:
    """Synthetic walks (not the reference clips themselves) to calibrate a variant on."""
    walks = [(0.3, 0.4, 1.0, 1), (1.0, 0.5, 1.1, -1), (2.0, 0.3, 0.9, 1), (2.5, 0.45, 1.05, -1)]
    return [walker(30, *walk) for walk in walks]


def plain_u8s8(out: Path) -> Path:
    """The shipped fp32 model quantised as the first int8 variant was (full-range weights),
    carrying the shipped int8 card (and so the fp32 reference)."""
    bare = quantize_int8(
        DEFAULT_MODEL,
        out.with_suffix(".bare.onnx"),
        calibration_walkers(),
        "silhouettes",
        FORMATS["u8s8"],
    )
    write_with_card(bare, out, read_card_file(DEFAULT_INT8))
    return out


def run_emulated(clips: np.ndarray, models: list[Path], tmp_path: Path) -> tuple[dict, list]:
    np.save(tmp_path / "clips.npy", clips)
    out = tmp_path / "emulated.npz"
    done = subprocess.run(
        [EMULATOR, "-cpu", CPU_WITHOUT_VNNI, sys.executable, "-c", _EMULATED,
         str(tmp_path / "clips.npy"), str(out), *map(str, models)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    embedded = np.load(out)
    return json.loads(done.stdout.splitlines()[-1]), [embedded[str(i)] for i in range(len(models))]


@needs_emulator
@pytest.mark.slow
def test_without_vnni_the_shipped_int8_agrees_and_plain_u8s8_is_refused(tmp_path, real_clips):
    old = plain_u8s8(tmp_path / "old.int8.onnx")
    clips = real_clips
    report, (fp32, shipped, saturated) = run_emulated(
        clips, [DEFAULT_MODEL, DEFAULT_INT8, old], tmp_path
    )
    assert report["cpu"] == "AVX2"  # what ONNX Runtime saw: no AVX-512, no VNNI
    proofs = report["proofs"]
    assert proofs[str(DEFAULT_MODEL)]["passed"] is True
    assert proofs[str(DEFAULT_INT8)]["passed"] is True
    assert proofs[str(DEFAULT_INT8)]["agreement"] >= 0.999
    assert proofs[str(old)]["passed"] is False  # the proof catches the saturating kernels
    assert proofs[str(old)]["agreement"] < 0.97

    native = EmbeddingEngine(DEFAULT_MODEL, device="cpu").embed(clips)
    assert agreements(fp32, native).min() > 0.9999  # fp32 is fp32 on either CPU
    assert agreements(shipped, native).min() >= 0.999  # on real clips too
    assert agreements(saturated, native).min() < 0.97


@pytest.fixture
def real_clips(request) -> np.ndarray:
    """Eight real 30-frame clips of subjects the default never trained on (065–066), or the
    calibration walkers where CASIA-B is absent: uint8 [8 or 4, 30, 64, 44]."""
    try:
        tree = request.getfixturevalue("real_training_tree")
    except pytest.skip.Exception:
        return np.stack(calibration_walkers())
    from training.data.cache import SilhouetteCache

    cache = SilhouetteCache.load(tree, ["065", "066"], progress=False)
    long_enough = np.flatnonzero(cache.lengths >= 30)
    picks = np.random.default_rng(0).choice(long_enough, 8, replace=False)
    return np.stack([cache.sequence(i)[:30] for i in picks])


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="this checkout ships no model")
def test_plain_u8s8_depends_on_the_cpu_and_the_shipped_format_does_not(tmp_path):
    """Here, natively: the shipped variant passes wherever this runs; plain U8S8 passes only
    where the CPU has VNNI (this is why the proof runs where the model is served)."""
    old = plain_u8s8(tmp_path / "old.int8.onnx")
    here = prove(EmbeddingEngine(old, device="cpu"))
    assert prove(EmbeddingEngine(DEFAULT_INT8, device="cpu")).passed
    has_vnni = "VNNI" in here.cpu
    assert here.passed is has_vnni, here.detail
