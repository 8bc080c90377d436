"""The one training config schema: YAML files under ``configs/`` validated by pydantic.

Every section forbids unknown keys, so a typo is an error that names the key, never a silently
ignored setting. ``load_config(path)`` reads a file; ``TrainConfig.model_validate(dict)`` a dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.data.subjects import parse_subjects


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(Section):
    """Which net and its options (see ``models.registry``); ``num_classes`` comes from the data."""

    name: Literal["convlstm_fusion", "baseline"] = "convlstm_fusion"
    channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem_stride: Literal[1, 2] = 1
    embedding_dim: int = Field(256, gt=0)
    parts: int = Field(16, gt=0)
    temporal: Literal["lstm", "convlstm"] = "lstm"
    hidden: int | None = Field(None, gt=0)
    kernel_size: int = Field(3, gt=0)

    def net_options(self, num_classes: int) -> dict:
        options = self.model_dump(exclude={"name"})
        if self.name == "baseline":
            for key in ("temporal", "hidden", "kernel_size"):
                options.pop(key)
        return {**options, "num_classes": num_classes}


class AugmentSection(Section):
    """Sequence-level augmentation: one random draw per sequence, applied to all its frames."""

    flip: float = Field(0.2, ge=0, le=1)  # probability of a horizontal flip
    affine: float = Field(0.5, ge=0, le=1)  # probability of a small random affine warp
    max_rotation: float = Field(5.0, ge=0)  # degrees
    max_shift: float = Field(0.05, ge=0)  # fraction of the frame size
    max_scale: float = Field(0.05, ge=0)  # relative change of size
    erase: float = Field(0.2, ge=0, le=1)  # probability of erasing one random rectangle


class DataSection(Section):
    root: Path = Path("/tmp/casia-b")
    train_subjects: str = "001-062"
    val_subjects: str | None = "063-074"
    frames: int = Field(30, gt=0)  # frames per training sequence
    ordered: bool = True  # ordered windows (needed by the LSTM) or random frames
    min_frames: int = Field(1, gt=0)  # drop shorter training sequences
    augment: AugmentSection = AugmentSection()

    @field_validator("train_subjects", "val_subjects")
    @classmethod
    def _subjects_parse(cls, value: str | None) -> str | None:
        if value is not None:
            parse_subjects(value)  # raises with a message that says what is wrong
        return value


class SamplerSection(Section):
    subjects: int = Field(8, gt=1)  # P: subjects per batch (split across ranks)
    sequences: int = Field(16, gt=1)  # K: sequences per subject


class LossSection(Section):
    triplet_margin: float = Field(0.2, ge=0)
    triplet_weight: float = Field(1.0, ge=0)
    ce_weight: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)


class OptimizerSection(Section):
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    milestones: tuple[int, ...] = (20000, 30000)  # iterations at which lr is multiplied by gamma
    gamma: float = Field(0.1, gt=0)


class RunSection(Section):
    """How and where to run; the device is chosen once, in ``training.runtime``."""

    iterations: int = Field(40000, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: fp16 AMP on CUDA, else fp32
    channels_last: bool = False
    threads: int | None = Field(None, gt=0)  # torch CPU threads (default: torch's choice)
    seed: int = 0
    log_every: int = Field(20, gt=0)
    val_every: int = Field(2000, gt=0)
    val_max_frames: int | None = Field(None, gt=0)  # cap frames per sequence in periodic validation
    checkpoint_every: int = Field(1000, gt=0)
    out_dir: Path = Path("runs/default")


class EvalSection(Section):
    metric: Literal["euc", "cos"] = "euc"
    batch_size: int = Field(16, gt=0)  # sequences of equal length embedded together


class TrainConfig(Section):
    name: str = "default"
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    sampler: SamplerSection = SamplerSection()
    loss: LossSection = LossSection()
    optimizer: OptimizerSection = OptimizerSection()
    run: RunSection = RunSection()
    eval: EvalSection = EvalSection()

    @model_validator(mode="after")
    def _milestones_ascend(self) -> TrainConfig:
        milestones = self.optimizer.milestones
        if list(milestones) != sorted(milestones):
            raise ValueError(f"optimizer.milestones must ascend, got {list(milestones)}")
        return self


class ConfigError(ValueError):
    """A config file that cannot be read or does not fit the schema."""


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read and validate a YAML config; ``overrides`` (nested dicts) are merged on top."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    merged = _merge(raw, overrides or {})
    try:
        return TrainConfig.model_validate(merged)
    except ValueError as error:
        raise ConfigError(f"invalid config {path}:\n{error}") from error


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
