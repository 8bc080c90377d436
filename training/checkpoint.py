"""Checkpoints: everything needed to resume exactly, and to rebuild the model from the file alone.

Contents: model, optimiser, scheduler and grad-scaler states; the iteration; the RNG states of
python, numpy and torch (and CUDA); the full config; the net's name and options; the training
subject ids (the classifier's classes); the contract version. Written atomically.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.registry import create_model

CONTRACT_VERSION = 1
"""Bumped when the input contract or embedding layout changes incompatibly."""


def rng_states() -> dict[str, Any]:
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Generators take their states as CPU byte tensors, wherever the checkpoint was loaded."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({**state, "contract_version": CONTRACT_VERSION, "rng": rng_states()}, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (our own files only: they hold RNG
    states, which need full unpickling)."""
    state = torch.load(Path(path), map_location=device, weights_only=False)
    if state.get("contract_version") != CONTRACT_VERSION:
        raise ValueError(
            f"{path}: contract version {state.get('contract_version')}, expected {CONTRACT_VERSION}"
        )
    return state


def model_from_state(state: dict[str, Any], device: torch.device | str = "cpu") -> torch.nn.Module:
    """Rebuild the trained net from a loaded checkpoint, in eval mode."""
    model = create_model(state["model_name"], **state["model_options"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Rebuild the trained net from a checkpoint file alone, in eval mode."""
    return model_from_state(load_checkpoint(path, device), device)
