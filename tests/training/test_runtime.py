"""training.runtime: the device and precision are chosen in one place, with clear refusals."""

from __future__ import annotations

import pytest
import torch

from training.config import RunSection
from training.runtime import setup_runtime


def test_cpu_single_process():
    runtime = setup_runtime(RunSection(device="cpu"))
    assert runtime.device == torch.device("cpu")
    assert (runtime.rank, runtime.world, runtime.is_main) == (0, 1, True)
    assert runtime.precision == "fp32"
    assert not runtime.grad_scaler().is_enabled()


def test_bf16_autocast_on_cpu():
    runtime = setup_runtime(RunSection(device="cpu", precision="bf16"))
    with runtime.autocast():
        out = torch.nn.Linear(4, 4)(torch.rand(2, 4))
    assert out.dtype == torch.bfloat16


def test_fp16_needs_cuda():
    with pytest.raises(RuntimeError, match="fp16"):
        setup_runtime(RunSection(device="cpu", precision="fp16"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_requested_without_cuda_is_refused():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        setup_runtime(RunSection(device="cuda"))
    assert setup_runtime(RunSection(device="auto")).device.type == "cpu"
