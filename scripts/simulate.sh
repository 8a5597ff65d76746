#!/usr/bin/env bash
# The simulation of DESIGN §5: seeded schedules of random workloads under faults, invariants
# checked after each. Usage: scripts/simulate.sh [--schedules N] [--seed S] [--workflows W] [--jobs J]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
exec .venv/bin/python -m ostinato._local.sim "$@"
