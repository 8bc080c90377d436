#!/usr/bin/env bash
# Set up (training, PostgreSQL, video and dev extras) and run every check: lint, format, the
# documentation site (mkdocs build --strict), tests.
# Tests that need real CASIA-B read ../shared/casia-b and skip when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh train,dev,postgres,video
.venv/bin/ruff check .
.venv/bin/ruff format --check .
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
.venv/bin/python -m pytest "$@"
