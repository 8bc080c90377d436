#!/usr/bin/env bash
# Create ./.venv (if missing) and install GaitLab into it, editable, with the extras named.
#   bash scripts/install.sh            base install: what the service needs (no torch)
#   bash scripts/install.sh train,dev  + training and development tools
#   bash scripts/install.sh video      + colour video of people; copies MediaPipe's pose models
#                                        out of the mediapipe wheel (docs/video.md)
# Torch: set GAITLAB_TORCH to the requirement for your platform (default torch==2.13.0, the build
# this project is tested with). It is installed before the extras so pip does not pick a
# different build for you.
# Nothing is installed again while pyproject.toml, the extras and this script are unchanged
# (a stamp in .venv says what was installed); GAITLAB_REINSTALL=1 installs anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
python=${PYTHON:-python3}
say() { echo "gaitlab install: $*" >&2; }

stamp=.venv/.gaitlab-installed
wanted="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16) extras=${extras:-none} torch=${GAITLAB_TORCH:-torch==2.13.0}"
if [ -z "${GAITLAB_REINSTALL:-}" ] && [ -x .venv/bin/python ] && [ -f "$stamp" ] \
    && grep -qxF "$wanted" "$stamp"; then
  exit 0  # already installed, as wanted
fi

if [ ! -x .venv/bin/python ]; then
  say "creating ./.venv with $("$python" --version)"
  "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

if [[ ",$extras," == *",train,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  say "installing ${GAITLAB_TORCH:-torch==2.13.0} (training; set GAITLAB_TORCH for another build)"
  pip install "${GAITLAB_TORCH:-torch==2.13.0}"
fi
say "installing GaitLab${extras:+ with $extras} and its dependencies into ./.venv (a minute or two the first time)"
if [ -n "$extras" ]; then
  pip install -e ".[$extras]"
else
  pip install -e .
fi
if [[ ",$extras," == *",video,"* ]]; then
  say "copying MediaPipe's pose models out of the mediapipe wheel"
  .venv/bin/python -m service.people.assets
fi
# a stamp per extras set: serve.sh (none) and test.sh (all) keep theirs side by side
grep -vF "extras=${extras:-none} " "$stamp" 2>/dev/null > "$stamp.new" || true
echo "$wanted" >> "$stamp.new"
mv "$stamp.new" "$stamp"
say "done; to run gaitlab without the path: source .venv/bin/activate (or .venv/bin/gaitlab …)"
