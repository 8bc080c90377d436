"""Where the shipped default model lives: ``models/weights/gaitlab-default.onnx`` (fp32) and
``gaitlab-default.int8.onnx``, each with its card.

Which variant serves (``precision``): ``fp32``, ``int8``, or ``auto``: the int8 variant on a
CPU when its card makes the case for it (``cpu_default``: its accuracy measured within half a
point of fp32's), fp32 otherwise.
"""

from __future__ import annotations

from pathlib import Path

from models.card import ModelCard, card_path

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = WEIGHTS / "gaitlab-default.onnx"
DEFAULT_INT8 = WEIGHTS / "gaitlab-default.int8.onnx"


def default_model_path(precision: str = "fp32", on_cpu: bool = True) -> Path:
    """The default model file for ``precision`` (``fp32``, ``int8`` or ``auto``);
    ``FileNotFoundError`` when this install ships none."""
    if precision not in ("auto", "fp32", "int8"):
        raise ValueError(f"precision must be auto, fp32 or int8; got {precision!r}")
    chosen = DEFAULT_MODEL
    if precision == "int8" or (precision == "auto" and on_cpu and int8_is_cpu_default()):
        chosen = DEFAULT_INT8
    if not chosen.is_file():
        raise FileNotFoundError(
            f"no default model at {chosen}: pass a model file (gaitlab export makes one)"
        )
    return chosen


def int8_is_cpu_default() -> bool:
    """Whether the shipped int8 variant's card says it serves by default on a CPU."""
    card = card_path(DEFAULT_INT8)
    return card.is_file() and ModelCard.from_json(card.read_text()).cpu_default is not None
