"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest

from tests.training.test_trainer import tiny_config
from training.config import TrainConfig
from training.export import export_checkpoint
from training.trainer import train


@pytest.fixture(scope="session")
def exported(training_tree, tmp_path_factory):
    """(checkpoint, ExportResult): a tiny net trained 10 iterations on 001–004, exported with
    its int8 variant, validated and calibrated on 065–066."""
    out = tmp_path_factory.mktemp("export")
    config = TrainConfig.model_validate(tiny_config(training_tree, out / "run", iterations=10))
    checkpoint = train(config, progress=False)
    # a 16-dimension toy net after 10 iterations quantises less faithfully than the shipped net
    # (0.9988 against 0.9993 at the worst reference clip): its card sets a looser proof bound
    result = export_checkpoint(
        checkpoint, out / "model.onnx", int8=True, progress=False, proof_bound=0.99
    )
    return checkpoint, result
