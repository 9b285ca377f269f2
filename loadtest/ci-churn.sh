#!/usr/bin/env bash
# Churn soak for CI, called by .ci/run after the smoke run: inside a network
# namespace that only has loopback, start the debug sfu-server and run 500
# join-and-leave cycles (50 churners at a time, each staying 1-5 s, spread
# over 10 rooms with a publishing anchor each). It fails when the server's
# RSS after everyone left exceeds its RSS after the first 500 cycles by more
# than 5% or 5 MiB, or when it still counts peers, tracks or subscriptions,
# or holds more than 2 fds or tokio tasks over its baseline. The JSON and
# HTML reports go to test-artifacts/loadtest-churn.*.
# Needs target/debug/sfu-server and target/debug/sfu-loadtest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ARTIFACTS="$PWD/test-artifacts"
mkdir -p "$ARTIFACTS"
export PATH="$PATH:/usr/sbin:/sbin"

if [ "${1:-}" = "--inside" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  target/debug/sfu-server --bind 127.0.0.1:0 --udp-port 0 --tcp-port 0 \
    >"$work/server.out" 2>"$ARTIFACTS/loadtest-churn-server.log" &
  server=$!
  url=""
  for _ in $(seq 100); do
    url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.out" | head -n 1 || true)"
    [ -n "$url" ] && break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "sfu-server did not start; its log:" >&2
    cat "$ARTIFACTS/loadtest-churn-server.log" >&2
    kill "$server" 2>/dev/null || true
    exit 1
  fi
  status=0
  target/debug/sfu-loadtest --url "$url" --scenario churn --cycles 500 \
    --peers 50 --lifetime 1s..5s --ramp 50 --churn-rooms 10 --audio-only \
    --no-progress --max-rss-growth 5% --require-clean-end \
    --json "$ARTIFACTS/loadtest-churn.json" --html "$ARTIFACTS/loadtest-churn.html" \
    || status=$?
  kill -TERM "$server"
  wait "$server" || true
  exit "$status"
fi

netns=(unshare --net)
if [ "$(id -u)" -ne 0 ]; then
  netns=(unshare --map-root-user --net)
fi
start=$SECONDS
"${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"
echo "churn soak: 500 cycles in $((SECONDS - start)) s; reports in test-artifacts/loadtest-churn.*"
