#!/usr/bin/env bash
# The long soak (run by hand, not in CI): inside a loopback-only network
# namespace, the release sfu-server carries `room` load (4 rooms x 4 peers,
# every peer publishing audio and 500 kbit/s video) for SOAK_DURATION
# (default 30m). Every 10 s the server's RSS, open fds and tokio tasks go to
# test-artifacts/soak-room-server.csv; the load tester's per-second
# timeseries (loss, latency p50/p99) is in test-artifacts/soak-room.json.
# At the end it prints RSS and p99 latency over the run, by 5-minute window.
# Build first: cargo build --release --bin sfu-server --bin sfu-loadtest
set -euo pipefail

export SFU_BUILD=release
# shellcheck source=loadtest/ci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ci-lib.sh"
DURATION=${SOAK_DURATION:-30m}

if [ "${1:-}" = "--inside" ]; then
  start_server soak-room-server.log
  server=$SERVER_PID
  url=$SERVER_URL
  csv="$ARTIFACTS/soak-room-server.csv"
  echo "t_s,rss_kib,fds,tokio_tasks" >"$csv"
  (
    start=$SECONDS
    while kill -0 "$server" 2>/dev/null; do
      rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null || echo "")
      fds=$(ls "/proc/$server/fd" 2>/dev/null | wc -l)
      tasks=$(python3 -c 'import sys,urllib.request;t=urllib.request.urlopen(sys.argv[1]).read().decode();print(next((l.split()[1] for l in t.splitlines() if l.startswith("sfu_tokio_alive_tasks ")),""))' "$url/metrics" 2>/dev/null || echo "")
      echo "$((SECONDS - start)),$rss,$fds,$tasks" >>"$csv"
      sleep 10
    done
  ) &
  sampler=$!
  status=0
  target/release/sfu-loadtest --url "$url" --scenario room --rooms 4 --peers 4 \
    --video-bitrate 500k --duration "$DURATION" --ramp 10 --no-progress \
    --json "$ARTIFACTS/soak-room.json" --html "$ARTIFACTS/soak-room.html" || status=$?
  kill -TERM "$server"
  wait "$server" || true
  kill "$sampler" 2>/dev/null || true
  python3 - "$ARTIFACTS" <<'PY'
import csv, json, sys
art = sys.argv[1]
rows = list(csv.DictReader(open(f"{art}/soak-room-server.csv")))
series = json.load(open(f"{art}/soak-room.json"))["timeseries"]
def window(t, size=300):
    return int(t // size)
by = {}
for r in rows:
    if r["rss_kib"]:
        by.setdefault(window(float(r["t_s"])), {}).setdefault("rss", []).append(int(r["rss_kib"]) / 1024)
        by[window(float(r["t_s"]))].setdefault("fds", []).append(int(r["fds"]))
for s in series:
    if s.get("latency_p99_ms") is not None:
        by.setdefault(window(s["t"]), {}).setdefault("p99", []).append(s["latency_p99_ms"])
        by[window(s["t"])].setdefault("loss", []).append(s["loss_pct"])
print("window  RSS MiB (min-max)  fds  p99 ms (median of 1 s samples)  loss % (mean)")
for w in sorted(by):
    d = by[w]
    rss = d.get("rss", [0]); p99 = sorted(d.get("p99", [0])); loss = d.get("loss", [0])
    print(f"{w*5:>3}-{w*5+5:<3} min  {min(rss):6.1f}-{max(rss):6.1f}  {max(d.get('fds',[0])):4}  "
          f"{p99[len(p99)//2]:8.1f}  {sum(loss)/len(loss):.3f}")
PY
  exit "$status"
fi

"${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"
