"""A faster CPU variant of an exported model: int8 weights and activations, calibrated on real
training clips (ONNX Runtime static quantisation, QDQ format, per-channel weights).

The variant keeps the fp32 model's card, with ``-int8`` on its version and a note; its own
validation figures are measured by the caller (``gaitlab export --int8``) and written into it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)


class _ClipReader(CalibrationDataReader):
    """Feeds calibration batches (uint8 [1, T, 64, 44]) to the quantiser."""

    def __init__(self, input_name: str, clips: list[np.ndarray]):
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._batches, None)
        return None if clip is None else {self.input_name: clip[None]}


def quantize_int8(
    fp32_path: Path, out_path: Path, calibration_clips: list[np.ndarray], input_name: str
) -> Path:
    """Write the int8 variant of ``fp32_path`` to ``out_path``; returns ``out_path``.

    calibration_clips: uint8 [T, 64, 44] each, real training sequences (a few dozen suffice).
    """
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _ClipReader(input_name, calibration_clips),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
    return out_path
