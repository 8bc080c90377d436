#!/usr/bin/env bash
# Set up the base install (no torch) and start the GaitLab service on the shipped default model
# (FAISS + SQLite gallery in ./gaitlab-data, http://127.0.0.1:8000). Arguments go to
# `gaitlab serve` (--host, --port, --model FILE.onnx, …).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/gaitlab serve --data-dir gaitlab-data "$@"
