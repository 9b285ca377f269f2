# Shared by ci-smoke.sh and ci-churn.sh (sourced, not run): the repository
# root as the working directory, test-artifacts/, and the two steps both
# scripts take.
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ARTIFACTS="$PWD/test-artifacts"
mkdir -p "$ARTIFACTS"
export PATH="$PATH:/usr/sbin:/sbin"

# The command prefix for a fresh network namespace (root, or a user
# namespace that maps us to root).
netns=(unshare --net)
if [ "$(id -u)" -ne 0 ]; then
  netns=(unshare --map-root-user --net)
fi

# The build the scripts run: debug in CI, SFU_BUILD=release for figures.
BUILD="${SFU_BUILD:-debug}"

# start_server SERVER_LOG [ARGS...]: starts target/$BUILD/sfu-server on
# loopback with ARGS (its log in test-artifacts/SERVER_LOG) and sets
# SERVER_PID and SERVER_URL; returns 1, with the log on stderr, if it does
# not start.
start_server() {
  local log="$ARTIFACTS/$1"
  shift
  local work
  work="$(mktemp -d)"
  "target/$BUILD/sfu-server" --bind 127.0.0.1:0 --udp-port 0 --tcp-port 0 "$@" \
    >"$work/server.out" 2>"$log" &
  SERVER_PID=$!
  SERVER_URL=""
  for _ in $(seq 100); do
    SERVER_URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.out" | head -n 1 || true)"
    [ -n "$SERVER_URL" ] && break
    sleep 0.1
  done
  rm -rf "$work"
  if [ -z "$SERVER_URL" ]; then
    echo "sfu-server did not start; its log:" >&2
    cat "$log" >&2
    kill "$SERVER_PID" 2>/dev/null || true
    return 1
  fi
}

# run_loadtest SERVER_LOG ARGS...: starts the server (start_server), runs
# target/$BUILD/sfu-loadtest --url <the server> ARGS..., saves the server's
# /metrics to $METRICS_OUT if that is set, stops the server, and returns
# the load tester's status.
run_loadtest() {
  start_server "$1" || return 1
  shift
  local server=$SERVER_PID url=$SERVER_URL
  local status=0
  "target/$BUILD/sfu-loadtest" --url "$url" "$@" || status=$?
  if [ -n "${METRICS_OUT:-}" ]; then
    # The server's counters after the run, before it stops.
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
      "$url/metrics" >"$METRICS_OUT" || status=1
  fi
  kill -TERM "$server"
  wait "$server" || true
  return "$status"
}
