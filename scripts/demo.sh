#!/usr/bin/env bash
# The main job: set everything up, then run the simulated carrier and the client demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m gateway.demo "$@"
