#!/usr/bin/env bash
# Slow-subscriber isolation, called by .ci/run: inside a network namespace
# that only has loopback, one publisher fans out to 20 subscribers through
# the debug sfu-server, twice. The second time one subscriber binds
# 127.0.0.3, whose downlink a token bucket (tc htb on lo) holds to
# 50 kbit/s behind an 8 kB buffer. It fails unless all 21 peers succeed,
# the other 19 lose under 0.5% of their packets and keep their p99 latency
# within 20% of the first run's (or 25 ms, whichever is more: a debug build
# on a shared 2-core machine), the slow one still gets audio, and the
# server counted drops for it (over_budget) and still answers /metrics.
# Reports go to test-artifacts/loadtest-slow-*.
# Needs target/debug/sfu-server and target/debug/sfu-loadtest.
set -euo pipefail

# shellcheck source=loadtest/ci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ci-lib.sh"

SLOW_IP=127.0.0.3
DURATION=${SLOW_DURATION:-15s}

if [ "${1:-}" = "--inside" ]; then
  # Everything sent to SLOW_IP leaves lo through a 50 kbit/s class; the
  # rest through a class far above what the test sends.
  tc qdisc add dev lo root handle 1: htb default 20 2>/dev/null
  tc class add dev lo parent 1: classid 1:10 htb rate 50kbit ceil 50kbit 2>/dev/null
  tc class add dev lo parent 1: classid 1:20 htb rate 10gbit 2>/dev/null
  # A link's buffer, not a default 1,000-packet queue (minutes at this rate).
  tc qdisc add dev lo parent 1:10 handle 10: bfifo limit 8000
  tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip dst "$SLOW_IP/32" flowid 1:10
  common=(--scenario fanout --subscribers 20 --duration "$DURATION" --ramp 20 --no-progress)
  run_loadtest loadtest-slow-baseline-server.log "${common[@]}" \
    --json "$ARTIFACTS/loadtest-slow-baseline.json"
  METRICS_OUT="$ARTIFACTS/loadtest-slow-metrics.txt" \
    run_loadtest loadtest-slow-server.log "${common[@]}" \
    --slow-subscribers 1 --slow-bind-ip "$SLOW_IP" \
    --json "$ARTIFACTS/loadtest-slow.json" --html "$ARTIFACTS/loadtest-slow.html"
  tc -s class show dev lo >"$ARTIFACTS/loadtest-slow-tc.txt"
  exec python3 - "$ARTIFACTS" <<'PY'
import json, re, sys
art = sys.argv[1]
base = json.load(open(f"{art}/loadtest-slow-baseline.json"))
run = json.load(open(f"{art}/loadtest-slow.json"))
metrics = open(f"{art}/loadtest-slow-metrics.txt").read()

def counter(name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0

over_budget = counter('sfu_packets_dropped_total{reason="over_budget"}')
slow = run.get("slow_subscribers") or {}
p99_base = base["latency_ms"]["p99"]
p99 = run["latency_ms"]["p99"]
allowed = max(p99_base * 1.2, p99_base + 25.0)
print(f"others: loss {run['packets']['loss_pct']:.3f}% (baseline {base['packets']['loss_pct']:.3f}%), "
      f"p99 {p99:.1f} ms (baseline {p99_base:.1f} ms, allowed {allowed:.1f}), "
      f"join success {run['peers']['join_success_pct']:.0f}%")
print(f"slow subscriber: {json.dumps(slow)}")
print(f"server: over_budget drops {over_budget:.0f}")
failures = []
if run["peers"]["succeeded"] < 21:
    failures.append(f"only {run['peers']['succeeded']} of 21 peers succeeded")
if run["packets"]["loss_pct"] >= 0.5:
    failures.append("the other subscribers lost 0.5% or more")
if p99 > allowed:
    failures.append("the other subscribers' p99 latency grew by more than 20%")
if slow.get("peers") != 1 or slow.get("received", 0) == 0:
    failures.append("the slow subscriber received nothing")
if slow.get("audio_expected", 0) == 0 or slow.get("audio_loss_pct", 100.0) >= 90.0:
    failures.append("the slow subscriber got (almost) no audio")
if over_budget <= 0:
    failures.append("the server counted no over_budget drops")
for f in failures:
    print(f"FAIL: {f}")
sys.exit(1 if failures else 0)
PY
fi

start=$SECONDS
"${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"
echo "slow subscriber: done in $((SECONDS - start)) s; reports in test-artifacts/loadtest-slow-*"
