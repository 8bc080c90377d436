#!/usr/bin/env bash
# Set up the base install (no torch) and start the GaitLab service on the shipped default model
# (FAISS + SQLite gallery in ./gaitlab-data). Arguments go to `gaitlab serve` (--host, --port, …).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ ! -f models/weights/gaitlab-default.onnx ] && [[ " $* " != *" --model "* ]]; then
  echo "The shipped default model is not in this checkout yet (it lands with the export issue)."
  echo "Serve a model you exported instead:  bash scripts/serve.sh --model FILE.onnx"
  exit 0
fi
exec .venv/bin/gaitlab serve --data-dir gaitlab-data "$@"
