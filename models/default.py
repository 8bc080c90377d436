"""Where the shipped default model lives: ``models/weights/gaitlab-default.onnx`` (+ its card)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = WEIGHTS / "gaitlab-default.onnx"


def default_model_path() -> Path:
    """The default model file; ``FileNotFoundError`` when this install ships none."""
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(
            f"no default model at {DEFAULT_MODEL}: pass a model file (gaitlab export makes one)"
        )
    return DEFAULT_MODEL
