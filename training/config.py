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


class ModelSection(BaseModel):
    """Which net, and its options as the net's own schema declares them (``models.registry``).

    ``name`` is a built-in net (``convlstm_fusion``, ``baseline``, …), a class of your own as
    ``my_pkg.my_net:MyNet``, or an entry point of the ``gaitlab.nets`` group. Every other key is
    an option of that net, checked against its schema: one it does not have is an error that names
    the net. ``num_classes`` is not an option: it comes from the training subjects.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = "convlstm_fusion"

    @model_validator(mode="after")
    def _options_fit_the_net(self) -> ModelSection:
        from models.registry import DERIVED_OPTIONS, build_config

        derived = sorted(set(self.options) & set(DERIVED_OPTIONS))
        if derived:
            raise ValueError(f"model.{derived[0]} is set from the data, not in a config")
        build_config(self.name, **self.options)  # raises, naming the net and the option
        return self

    @property
    def options(self) -> dict:
        """The options the config gives (the net's defaults fill in the rest)."""
        return dict(self.model_extra or {})

    def net_options(self, num_classes: int) -> dict:
        """Every option of the net, defaults included, as stored in checkpoints and cards."""
        from models.registry import complete_options

        return complete_options(self.name, self.options, num_classes=num_classes)


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
    train_subjects: str = "001-050"
    val_subjects: str | None = "051-074"  # 24 subjects: 12 overstated CL by 17 points
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


class LossTerm(BaseModel):
    """One term of the training loss: ``weight × loss(outputs[output], labels)``.

    ``name`` is a built-in loss (``triplet``, ``cross_entropy``; ``training.losses``) or a class
    of your own as ``my_pkg.my_losses:MyLoss``; every other key is an option of that loss,
    checked against its schema. ``output`` names the net output it reads (default: the loss's
    own, e.g. ``embeddings`` for the triplet loss).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    weight: float = Field(1.0, ge=0)
    output: str | None = None

    @model_validator(mode="after")
    def _options_fit_the_loss(self) -> LossTerm:
        from training.losses import build_loss

        build_loss(self.name, self.options)  # raises, naming the loss and the option
        return self

    @property
    def options(self) -> dict:
        return dict(self.model_extra or {})


DEFAULT_LOSSES = (
    LossTerm(name="triplet", weight=1.0, margin=0.2),
    LossTerm(name="cross_entropy", weight=1.0, label_smoothing=0.1),
)


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
    compile: bool = False  # torch.compile the net for training (inductor; compiles on step 1)
    threads: int | None = Field(None, gt=0)  # torch CPU threads (default: torch's choice)
    seed: int = 0
    log_every: int = Field(20, gt=0)
    val_every: int = Field(2000, gt=0)
    # cap frames per sequence in intermediate validations; the final one uses every frame
    val_max_frames: int | None = Field(None, gt=0)
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
    losses: tuple[LossTerm, ...] = Field(DEFAULT_LOSSES, min_length=1)
    optimizer: OptimizerSection = OptimizerSection()
    run: RunSection = RunSection()
    eval: EvalSection = EvalSection()

    @field_validator("losses")
    @classmethod
    def _loss_names_unique(cls, losses: tuple[LossTerm, ...]) -> tuple[LossTerm, ...]:
        names = [term.name for term in losses]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"loss {repeated[0]!r} is listed twice")
        return losses

    @model_validator(mode="after")
    def _milestones_ascend(self) -> TrainConfig:
        milestones = self.optimizer.milestones
        if list(milestones) != sorted(milestones):
            raise ValueError(f"optimizer.milestones must ascend, got {list(milestones)}")
        return self


class ConfigError(ValueError):
    """A config file that cannot be read or does not fit the schema."""


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict:
    """A YAML file whose top level is a mapping; ``ConfigError`` naming the file otherwise."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {what} {path}: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must be a mapping at the top level")
    return raw


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read and validate a YAML config; ``overrides`` (nested dicts) are merged on top."""
    merged = merge_overrides(read_yaml_mapping(path), overrides or {})
    try:
        return TrainConfig.model_validate(merged)
    except ValueError as error:
        raise ConfigError(f"invalid config {path}:\n{error}") from error


def merge_overrides(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in: nested mappings merge, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged
