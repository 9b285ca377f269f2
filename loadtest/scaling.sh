#!/usr/bin/env bash
# Workers 1 -> 2 (run by hand, not in CI): inside a loopback-only network
# namespace, the same `room` load against a fresh release sfu-server with
# --workers 1 and then --workers 2, SCALING_RUNS times each (default 3).
# For each run it prints forwarded packets per second, loss, the server's CPU
# (cores), and each Worker thread's share of it (from /proc/PID/task), so
# the split of the work over the Workers is visible as well as the totals.
# Reports go to test-artifacts/scaling-w<N>-<run>.json.
# Build first: cargo build --release --bin sfu-server --bin sfu-loadtest
# Load: SCALING_ROOMS (4) rooms of SCALING_PEERS (5) peers, every peer
# publishing audio and SCALING_BITRATE (500k) video, for SCALING_DURATION (20s).
set -euo pipefail

export SFU_BUILD=release
# shellcheck source=loadtest/ci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ci-lib.sh"

# thread_ticks PID: "name ticks" for each sfu-worker thread (utime + stime).
thread_ticks() {
  python3 - "$1" <<'PY'
import glob, sys
for path in glob.glob(f"/proc/{sys.argv[1]}/task/*/stat"):
    try:
        text = open(path).read()
    except OSError:
        continue
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    if name.startswith("sfu-worker"):
        print(name, int(fields[11]) + int(fields[12]))
PY
}

if [ "${1:-}" = "--inside" ]; then
  for workers in 1 2; do
    for run in $(seq "${SCALING_RUNS:-3}"); do
      SFU_WORKERS=$workers start_server "scaling-w$workers-$run-server.log"
      json="$ARTIFACTS/scaling-w$workers-$run.json"
      before="$(thread_ticks "$SERVER_PID")"
      status=0
      target/release/sfu-loadtest --url "$SERVER_URL" --scenario room \
        --rooms "${SCALING_ROOMS:-4}" --peers "${SCALING_PEERS:-5}" \
        --video-bitrate "${SCALING_BITRATE:-500k}" --duration "${SCALING_DURATION:-20s}" \
        --ramp 10 --no-progress --json "$json" >/dev/null || status=$?
      after="$(thread_ticks "$SERVER_PID")"
      kill -TERM "$SERVER_PID"
      wait "$SERVER_PID" || true
      python3 - "$json" "$workers" "$run" "$status" "$before" "$after" <<'PY'
import json, sys
path, workers, run, status, before, after = sys.argv[1:]
doc = json.load(open(path))
def ticks(text):
    out = {}
    for line in text.splitlines():
        name, t = line.rsplit(" ", 1)
        out[name] = int(t)
    return out
b, a = ticks(before), ticks(after)
per = {k: a[k] - b.get(k, 0) for k in sorted(a)}
total = sum(per.values()) or 1
split = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in per.items())
s = doc.get("server", {})
p = doc.get("packets", {})
secs = doc.get("elapsed_s") or 0
fwd = s.get("forwarded_packets", 0) / secs if secs else float("nan")
print(f"workers {workers} run {run} (exit {status}): forwarded {fwd:.0f} pkt/s over the run, "
      f"loss {p.get('loss_pct', float('nan')):.3f}%, server {s.get('cpu_cores', float('nan')):.2f} cores, "
      f"{s.get('cpu_us_per_forwarded_packet', float('nan')):.2f} µs/pkt, load generator "
      f"{s.get('load_generator_cpu_cores', float('nan')):.2f} cores; worker threads: {split}")
PY
    done
  done
  exit 0
fi

exec "${netns[@]}" sh -c 'ip link set lo up && exec bash "$0" --inside' "${BASH_SOURCE[0]}"
