"""A ``.tflite`` model run by LiteRT (``ai-edge-litert``), one thread, outputs by name.

One thread per model: XNNPACK's second thread bought nothing on these small models (measured:
pose detector 11.8 → 12.3 ms, landmark model 15.5 → 16.7 ms on 2 cores), and the service runs
several requests side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.people.limits import MissingExtraError


class TfliteModel:
    def __init__(self, path: Path, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:  # pragma: no cover - depends on the install
            raise MissingExtraError(
                "the video pipeline needs LiteRT: pip install 'gaitlab[video]'"
            ) from error
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        (self.input,) = self.interpreter.get_input_details()
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.input["shape"])

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """In  batch float32 of the input's shape. Out every output by name (copies)."""
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(i) for name, i in self.outputs.items()}
