#!/usr/bin/env bash
# Smoke run of sfu-loadtest, called by .ci/run: inside a network namespace
# that only has loopback, start the debug sfu-server, run the `room`
# scenario (2 rooms x 3 peers, 10 s) with thresholds it must meet, and keep
# its JSON and HTML reports in test-artifacts/; then open the HTML report in
# headless Chromium (no network either) and keep a screenshot of it.
# Needs target/debug/sfu-server and target/debug/sfu-loadtest.
set -euo pipefail

# shellcheck source=loadtest/ci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ci-lib.sh"

if [ "${1:-}" = "--inside" ]; then
  status=0
  run_loadtest loadtest-server.log --scenario room --rooms 2 --peers 3 \
    --duration 10s --ramp 20 --max-loss 1% --min-join-success 100% \
    --json "$ARTIFACTS/loadtest-room.json" --html "$ARTIFACTS/loadtest-room.html" \
    || status=$?
  exit "$status"
fi

"${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"

# The report must open offline without errors; keep a screenshot.
if [ -x /usr/bin/chromium ]; then
  log="$(mktemp)"
  "${netns[@]}" /usr/bin/chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --enable-logging=stderr --v=0 --window-size=1000,2200 \
    --screenshot="$ARTIFACTS/loadtest-room.png" \
    "file://$ARTIFACTS/loadtest-room.html" 2>"$log" >/dev/null
  if grep -E 'Uncaught|CONSOLE\(' "$log" >&2; then
    echo "the HTML report logged errors in Chromium" >&2
    exit 1
  fi
  rm -f "$log"
  [ -s "$ARTIFACTS/loadtest-room.png" ] || { echo "no screenshot of the HTML report" >&2; exit 1; }
  echo "HTML report screenshot: test-artifacts/loadtest-room.png"
else
  echo "chromium not installed; skipping the HTML report screenshot"
fi
