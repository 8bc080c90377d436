"""Service settings: one validated object, from arguments or ``GAITLAB_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.clips import ClipLimits


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("gaitlab-data")
    model: Path | None = None  # None: the shipped default model
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, gt=0)
    max_upload_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_frames: int = Field(1000, gt=0)
    min_frames: int = Field(5, gt=0)
    max_bulk_clips: int = Field(256, gt=0)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """``GAITLAB_DATA_DIR``, ``GAITLAB_MODEL``, ``GAITLAB_DEVICE``, … then ``overrides``."""
        values = {}
        for name in cls.model_fields:
            env = os.environ.get(f"GAITLAB_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def limits(self) -> ClipLimits:
        return ClipLimits(max_bytes=self.max_upload_bytes, max_frames=self.max_frames)

    @property
    def gallery_path(self) -> Path:
        return self.data_dir / "gallery.db"
