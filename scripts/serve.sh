#!/usr/bin/env bash
# Set up the base install (no torch; skipped when nothing changed) and start the GaitLab service
# on the shipped default model (FAISS + SQLite gallery in ./gaitlab-data,
# http://127.0.0.1:8000). Arguments go to `gaitlab serve` (--host, --port, --model FILE.onnx, …).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "gaitlab: starting the service on the shipped model, gallery in ./gaitlab-data" \
  "(the page: http://127.0.0.1:8000/ unless --port says otherwise; Ctrl-C stops it)" >&2
exec .venv/bin/gaitlab serve --data-dir gaitlab-data "$@"
