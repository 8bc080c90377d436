"""Load pickled numpy arrays without letting the pickle run anything.

OpenGait stores each sequence as a pickled ``numpy.ndarray``. Unpickling calls whatever globals
the stream names, so a crafted file could run ``os.system``. :func:`load_array` admits only the
few numpy callables that rebuild a plain array and refuses everything else before it is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

# (module, name) pairs that numpy's ndarray pickling emits, for numpy 1.x and 2.x module paths.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # Protocol-2 pickles written by Python 2 era code store raw bytes as latin-1 strings.
        ("_codecs", "encode"),
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the numpy-array allow-list, or holds no plain array."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only plain numpy arrays are allowed"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(
            "refusing persistent references: only plain numpy arrays are allowed"
        )


def loads_array(data: bytes) -> np.ndarray:
    """Unpickle ``data`` that must hold one plain numeric numpy array.

    Raises :class:`UnsafePickleError` for any other global (nothing it names is called), for object
    arrays and for anything that is not an array; ``pickle.UnpicklingError`` and friends for a
    corrupt stream.
    """
    obj = _ArrayUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, np.ndarray) or type(obj) is not np.ndarray:
        raise UnsafePickleError(f"expected a numpy array, got {type(obj).__name__}")
    if obj.dtype.hasobject or obj.dtype.kind not in "biuf":
        raise UnsafePickleError(f"expected a numeric array, got dtype {obj.dtype}")
    return obj


def load_array(path: str | Path) -> np.ndarray:
    """Read ``path`` and unpickle it with :func:`loads_array`."""
    return loads_array(Path(path).read_bytes())
