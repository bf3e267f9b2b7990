#!/usr/bin/env bash
# The whole test suite: set everything up, lint, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "test: ruff"
.venv/bin/ruff check .
echo "test: pytest"
exec .venv/bin/python -m pytest -q "$@"
