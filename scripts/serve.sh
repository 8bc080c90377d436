#!/usr/bin/env bash
# Set up the base install (no torch) and start the GaitLab service.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if .venv/bin/gaitlab serve --help >/dev/null 2>&1; then
  exec .venv/bin/gaitlab serve "$@"
fi
echo "The HTTP service is not built yet (it arrives with the service issue)."
echo "The base install is ready; this is what the gaitlab command offers today:"
echo
.venv/bin/gaitlab --help
