#!/usr/bin/env bash
# The demo: the example order workflow on the emulated stack, its result and its history.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m examples.demo "$@"
