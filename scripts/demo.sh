#!/usr/bin/env bash
# The demo: start the local stack (`ostinato dev`, embedded AWS, no account, no Docker) with
# the example order app, start a workflow over HTTP with the CLI, signal it, wait for its
# result (its shipping timer fires for real after 3 s) and print its history.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export OSTINATO_API_URL=http://127.0.0.1:${PORT:-8787}
ost=.venv/bin/ostinato
log=$(mktemp)
$ost dev examples.order:app --port "${PORT:-8787}" >"$log" 2>&1 &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
  .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$OSTINATO_API_URL/openapi.json" >/dev/null 2>&1 && break
  kill -0 $dev 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
echo "== ostinato dev is up at $OSTINATO_API_URL"
id="order-$(date +%s)"
set -x
$ost workflow start order '["espresso beans", "grinder"]' 3 --id "$id"
$ost workflow query "$id" progress
$ost workflow signal "$id" approve '"ann"'
$ost workflow result "$id"
$ost workflow history "$id"
set +x
echo "== what ostinato dev logged"
cat "$log"
