"""The experiment file: a base training config, runs that override it, comparisons to draw.

    name: seed
    base: ../convlstm_fusion_cpu.yaml       # relative to this file
    defaults:                               # overrides applied to every run (optional)
      data: {train_subjects: 001-050, val_subjects: 051-074}
    runs:
      - name: fused_lr0.05_s0
        overrides: {optimizer: {lr: 0.05}, run: {seed: 0}}
      - name: baseline_lr0.05_s0
        overrides: {model: {name: baseline}}
    comparisons:
      - title: ConvLSTM + fusion against the baseline
        runs: [fused_lr0.05_s0, baseline_lr0.05_s0]

Overrides are nested mappings merged into the base (the same merge as ``load_config``). Every
run's full training config is validated when the file is loaded, so a bad override fails before
any training, with the run's name in the message. Unknown keys, repeated run names and
comparisons naming runs that do not exist are errors that name them.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from training.config import ConfigError, TrainConfig, merge_overrides, read_yaml_mapping

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # also a folder name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSpec(_Strict):
    name: str
    overrides: dict = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        if not RUN_NAME.match(name):
            raise ValueError(
                f"run name {name!r} must start with a letter or digit and hold only letters, "
                "digits, '.', '_' and '-'"
            )
        return name


class Comparison(_Strict):
    title: str = Field(min_length=1)
    runs: list[str] = Field(min_length=1)


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1)
    base: Path
    description: str = ""
    defaults: dict = Field(default_factory=dict)
    runs: list[RunSpec] = Field(min_length=1)
    comparisons: list[Comparison] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> ExperimentSpec:
        names = [run.name for run in self.runs]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"run {repeated[0]!r} is defined twice")
        for comparison in self.comparisons:
            for name in comparison.runs:
                if name not in names:
                    raise ValueError(
                        f"comparison {comparison.title!r} names run {name!r}, which does not "
                        f"exist (runs: {', '.join(names)})"
                    )
        return self


class Experiment:
    """A loaded experiment: its spec and every run's validated training config."""

    def __init__(self, spec: ExperimentSpec, source: Path, configs: dict[str, TrainConfig]):
        self.spec = spec
        self.source = source
        self._configs: dict[str, TrainConfig] = configs

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def run_names(self) -> list[str]:
        return [run.name for run in self.spec.runs]

    def config(self, run: str, out_dir: Path) -> TrainConfig:
        """Run ``run``'s training config, writing to ``out_dir/runs/<run>``."""
        config = self._configs[run]
        update = {"run": config.run.model_copy(update={"out_dir": Path(out_dir) / "runs" / run})}
        return config.model_copy(update=update)


def load_experiment(path: str | Path, data_root: str | Path | None = None) -> Experiment:
    """Read and validate an experiment file and every run's config; ``ConfigError`` otherwise.
    ``data_root`` overrides ``data.root`` of every run."""
    path = Path(path)
    raw = read_yaml_mapping(path, "experiment")
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid experiment {path}:\n{error}") from error
    base_path = spec.base if spec.base.is_absolute() else path.parent / spec.base
    base = read_yaml_mapping(base_path, "base config")
    configs = {}
    for run in spec.runs:
        merged = merge_overrides(merge_overrides(base, spec.defaults), run.overrides)
        merged["name"] = run.name
        if data_root is not None:
            merged = merge_overrides(merged, {"data": {"root": str(data_root)}})
        try:
            configs[run.name] = TrainConfig.model_validate(merged)
        except ValueError as error:
            message = f"experiment {path}, run {run.name!r}: invalid config:\n{error}"
            raise ConfigError(message) from error
    return Experiment(spec, path, configs)
