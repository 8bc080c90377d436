"""GaitLab: gait recognition from silhouettes. This package holds only the ``gaitlab`` command."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gaitlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
