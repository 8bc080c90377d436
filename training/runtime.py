"""Where and how training runs, decided once: device, distributed ranks, precision.

``setup_runtime(run)`` reads the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK): with it, a
process group is started (NCCL on CUDA, gloo on CPU) and each rank takes its device; without it,
the run is a single process. Everything else asks the returned :class:`Runtime`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from training.config import RunSection


@dataclass
class Runtime:
    device: torch.device
    rank: int
    world: int
    local_rank: int
    precision: str  # "fp32", "bf16" or "fp16"

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def autocast(self):
        """Mixed precision for the forward pass, or nothing in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling is needed for fp16 only; disabled otherwise (a no-op object)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _choose_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device is 'cuda' but no CUDA device is available")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _choose_precision(requested: str, device: torch.device) -> str:
    if requested == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise RuntimeError("fp16 mixed precision needs CUDA; use bf16 or fp32 on the CPU")
    return requested


def setup_runtime(run: RunSection) -> Runtime:
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = _choose_device(run.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if run.threads:
        torch.set_num_threads(run.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, rank, world, local_rank, _choose_precision(run.precision, device))


def teardown_runtime(runtime: Runtime, wait_for_others: bool = True) -> None:
    """Leave the process group; after a clean run, only once every rank is done with it (rank
    0 validates last while the others wait: one rank tearing gloo down under another aborted
    the process now and then)."""
    if runtime.distributed and dist.is_initialized():
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()
