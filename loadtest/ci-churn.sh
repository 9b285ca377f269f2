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

# shellcheck source=loadtest/ci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ci-lib.sh"

if [ "${1:-}" = "--inside" ]; then
  status=0
  run_loadtest loadtest-churn-server.log --scenario churn --cycles 500 \
    --peers 50 --lifetime 1s..5s --ramp 50 --churn-rooms 10 --audio-only \
    --no-progress --max-rss-growth 5% --require-clean-end \
    --json "$ARTIFACTS/loadtest-churn.json" --html "$ARTIFACTS/loadtest-churn.html" \
    || status=$?
  exit "$status"
fi

start=$SECONDS
"${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"
echo "churn soak: 500 cycles in $((SECONDS - start)) s; reports in test-artifacts/loadtest-churn.*"
