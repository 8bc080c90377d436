"""training.data.safe_pickle: plain arrays load; anything else is refused before it runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from training.data.safe_pickle import UnsafePickleError, load_array, loads_array


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int64, np.bool_])
def test_plain_arrays_round_trip(protocol, dtype):
    array = (np.arange(2 * 64 * 44).reshape(2, 64, 44) % 7).astype(dtype)
    loaded = loads_array(pickle.dumps(array, protocol=protocol))
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_non_contiguous_array_round_trips():
    array = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)[:, ::2]
    np.testing.assert_array_equal(loads_array(pickle.dumps(array, protocol=5)), array)


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = tmp_path / "evil.pkl"
    payload.write_bytes(pickle.dumps(_RunsACommand(marker)))
    with pytest.raises(UnsafePickleError, match=r"os\.system|posix\.system"):
        load_array(payload)
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    marker = tmp_path / "ran"

    class Eval:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        loads_array(pickle.dumps(Eval()))
    assert not marker.exists()


def test_array_smuggled_inside_a_container_is_refused():
    with pytest.raises(UnsafePickleError, match="expected a numpy array"):
        loads_array(pickle.dumps({"frames": np.zeros(3)}))


def test_object_arrays_are_refused():
    with pytest.raises(UnsafePickleError):
        loads_array(pickle.dumps(np.array([1, "a"], dtype=object)))


def test_corrupt_stream_raises():
    data = pickle.dumps(np.zeros((4, 64, 64), np.uint8))
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        loads_array(data[: len(data) // 2])
