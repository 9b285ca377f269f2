#!/usr/bin/env bash
# A room load across two cluster nodes (run by hand): inside a loopback-only
# network namespace, a redis-server and two release sfu-server nodes with
# --cascade-local, so that each room's participants stay on the node they
# reach and the rooms span both nodes, linked by each satellite's bridge.
# sfu-loadtest connects peers to the two nodes in turn (--node-url). Printed:
# the load test's figures, the inter-node bitrate measured on the link
# (sfu_cluster_relay_bytes_total) against the theory of one copy of each
# track per remote node (every publisher's bitrate, once), and what relaying
# once per remote subscriber would have cost. CLUSTER_RUNS runs (default 3);
# reports in test-artifacts/cluster-<run>.json.
# Build first: cargo build --release --bin sfu-server --bin sfu-loadtest
# Load: CLUSTER_ROOMS (2) rooms of CLUSTER_PEERS (6) peers, every peer
# publishing audio and CLUSTER_BITRATE (500k) video, for CLUSTER_DURATION (20s).
set -euo pipefail

export SFU_BUILD="${SFU_BUILD:-release}"
# shellcheck source=loadtest/ci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ci-lib.sh"

# relay_bytes URL: the node's relayed RTP bytes, both directions.
relay_bytes() {
  python3 - "$1/metrics" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1]).read().decode()
print(int(sum(float(l.split()[-1]) for l in text.splitlines()
              if l.startswith("sfu_cluster_relay_bytes_total{"))))
PY
}

if [ "${1:-}" = "--inside" ]; then
  redis-server --port 6391 --bind 127.0.0.1 --save '' --appendonly no >"$ARTIFACTS/cluster-redis.log" 2>&1 &
  redis=$!
  trap 'kill $redis 2>/dev/null || true' EXIT
  for _ in $(seq 50); do redis-cli -p 6391 PING >/dev/null 2>&1 && break; sleep 0.1; done
  common=(--redis-url redis://127.0.0.1:6391/ --cluster-ttl-secs 3 --cascade-local
          --api-key cluster-load --api-secret cluster-load-secret --dev --workers 1)
  rooms="${CLUSTER_ROOMS:-2}" peers="${CLUSTER_PEERS:-6}"
  for run in $(seq "${CLUSTER_RUNS:-3}"); do
    redis-cli -p 6391 FLUSHALL >/dev/null
    start_server "cluster-$run-n1.log" --node-id n1 "${common[@]}"
    n1=$SERVER_PID url1=$SERVER_URL
    start_server "cluster-$run-n2.log" --node-id n2 "${common[@]}"
    n2=$SERVER_PID url2=$SERVER_URL
    sleep 1.5 # both registered
    json="$ARTIFACTS/cluster-$run.json"
    before=$(( $(relay_bytes "$url1") + $(relay_bytes "$url2") ))
    status=0
    target/release/sfu-loadtest --url "$url1" --node-url "$url2" --scenario room \
      --rooms "$rooms" --peers "$peers" --api-key cluster-load --api-secret cluster-load-secret \
      --video-bitrate "${CLUSTER_BITRATE:-500k}" --duration "${CLUSTER_DURATION:-20s}" \
      --ramp 5 --no-progress --json "$json" >"$ARTIFACTS/cluster-$run.txt" || status=$?
    after=$(( $(relay_bytes "$url1") + $(relay_bytes "$url2") ))
    kill -TERM "$n1" "$n2"
    wait "$n1" "$n2" || true
    python3 - "$json" "$run" "$status" "$before" "$after" "$rooms" "$peers" <<'PY'
import json, sys
path, run, status, before, after, rooms, peers = sys.argv[1:]
doc = json.load(open(path))
secs = doc.get("elapsed_s") or float("nan")
p = doc.get("packets", {})
# Payload plus a 12-byte RTP header per packet, as the link counts them.
sent_bps = (p.get("sent_bytes", 0) + 12 * p.get("sent", 0)) * 8 / secs
relay_bps = (int(after) - int(before)) * 8 / secs
remote = int(peers) // 2
print(f"run {run} (exit {status}): {rooms} rooms of {peers}, loss {p.get('loss_pct', float('nan')):.3f}%, "
      f"join p50 {doc.get('join_time_ms', {}).get('p50') or float('nan'):.0f} ms, "
      f"peers {doc.get('peers', {}).get('succeeded', '?')}/{doc.get('peers', {}).get('planned', '?')}; "
      f"published {sent_bps / 1e6:.2f} Mbit/s; over the link {relay_bps / 1e6:.2f} Mbit/s "
      f"= {relay_bps / sent_bps:.2f}x the theory of one copy per track per remote node "
      f"(relaying once per remote subscriber: {remote}x = {sent_bps * remote / 1e6:.2f} Mbit/s)")
PY
  done
  exit 0
fi

exec "${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"
