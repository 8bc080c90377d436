"""A faster CPU variant of an exported model: int8 weights and activations, calibrated on real
training clips (ONNX Runtime static quantisation, QDQ format, per-channel weights).

The format is uint8 activations × int8 weights (U8S8) with ``reduce_range``: weights use 7 of
their 8 bits. ONNX Runtime's U8S8 kernels on x86 CPUs without VNNI (AVX2, AVX-512 without
VNNI) add pairs of uint8 × int8 products in 16 bits, which saturate with full-range weights: the
first shipped variant agreed with fp32 at 0.90 (mean part cosine) on such a CPU and lost 36
rank-1 points on NM (issue 25). With 7-bit weights a pair cannot overflow. Measured side by side
(``bench/int8_formats.py``; README "The default model"): on a CPU with VNNI, U8S8 with
reduce_range ran as fast as plain U8S8 (×2.5 of fp32) and S8S8 slower than fp32 (×0.8); on an
emulated CPU without VNNI, plain U8S8 agreed with fp32 at 0.90, the others at ≥ 0.999.

The variant keeps the fp32 model's card, with ``-int8`` on its version and a note; its own
validation figures are measured by the caller (``gaitlab export --int8``) and written into it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)


@dataclass(frozen=True)
class Int8Format:
    """One way to quantise: activation and weight types, and whether weights keep 7 bits."""

    name: str
    activations: QuantType
    weights: QuantType
    reduce_range: bool

    @property
    def description(self) -> str:
        bits = "7-bit" if self.reduce_range else "8-bit"
        act = "uint8" if self.activations == QuantType.QUInt8 else "int8"
        wt = "uint8" if self.weights == QuantType.QUInt8 else "int8"
        return (
            f"{self.name}: ONNX Runtime static QDQ, {act} activations, per-channel {bits} {wt} "
            "weights, calibrated (min-max) on 64 training clips of 30 frames"
        )


FORMATS = {
    f.name: f
    for f in (
        Int8Format("u8s8", QuantType.QUInt8, QuantType.QInt8, reduce_range=False),
        Int8Format("u8s8-reduce-range", QuantType.QUInt8, QuantType.QInt8, reduce_range=True),
        Int8Format("s8s8", QuantType.QInt8, QuantType.QInt8, reduce_range=False),
        Int8Format("u8u8", QuantType.QUInt8, QuantType.QUInt8, reduce_range=False),
    )
}
SHIPPED_FORMAT = FORMATS["u8s8-reduce-range"]
"""Right on every x86 CPU and as fast as plain U8S8 where that was right (module docstring)."""


class _ClipReader(CalibrationDataReader):
    """Feeds calibration batches (uint8 [1, T, 64, 44]) to the quantiser."""

    def __init__(self, input_name: str, clips: list[np.ndarray]):
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._batches, None)
        return None if clip is None else {self.input_name: clip[None]}


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration_clips: list[np.ndarray],
    input_name: str,
    fmt: Int8Format = SHIPPED_FORMAT,
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
            reduce_range=fmt.reduce_range,
            weight_type=fmt.weights,
            activation_type=fmt.activations,
        )
    return out_path
