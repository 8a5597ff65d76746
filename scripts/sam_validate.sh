#!/usr/bin/env bash
# Validate template.yaml with the SAM CLI (`sam validate --lint`), offline.
#
# The SAM CLI pins boto3 exactly, so it lives in its own virtual environment, created on first
# use: $SAM_VENV, default .venv/sam. It sits inside .venv/ on purpose: that name is gitignored
# and is one of the directories `sam build` leaves out when it copies the repository root (the
# functions' CodeUri); a sibling such as .venv-sam would be copied into every function.
#
# Usage: scripts/sam_validate.sh [TEMPLATE]   (default template.yaml; idempotent; exits non-zero
#        when validation fails)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SAM_VENV:-$root/.venv/sam}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

if ! "$venv/bin/sam" --version >/dev/null 2>&1; then
    echo "installing aws-sam-cli into $venv" >&2
    "$python" -m venv --clear "$venv"  # --clear: a copy moved from another path is broken
    "$venv/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli
fi

cd "$root"
# Dummy credentials and a region: validation is offline, but the CLI insists on both.
export SAM_CLI_TELEMETRY=0
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_SESSION_TOKEN="${AWS_SESSION_TOKEN:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
exec "$venv/bin/sam" validate --lint --template-file "${1:-$root/template.yaml}"
