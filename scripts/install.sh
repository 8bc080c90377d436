#!/usr/bin/env bash
# Create ./.venv (if missing) and install GaitLab into it, editable, with the extras named.
#   bash scripts/install.sh            base install: what the service needs (no torch)
#   bash scripts/install.sh train,dev  + training and development tools
#   bash scripts/install.sh video      + colour video of people; copies MediaPipe's pose models
#                                        out of the mediapipe wheel (docs/video.md)
# Torch: set GAITLAB_TORCH to the requirement for your platform (default torch==2.13.0, the build
# this project is tested with). It is installed before the extras so pip does not pick a
# different build for you.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

if [[ ",$extras," == *",train,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install "${GAITLAB_TORCH:-torch==2.13.0}"
fi
if [ -n "$extras" ]; then
  pip install -e ".[$extras]"
else
  pip install -e .
fi
if [[ ",$extras," == *",video,"* ]]; then
  .venv/bin/python -m service.people.assets
fi
