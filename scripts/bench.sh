#!/usr/bin/env bash
# The performance targets of issue 9, measured on this machine and printed
# as one table (measured value, target, pass or fail).
#
# Usage: scripts/bench.sh [--runs N] [--subscribers N] [--duration D]
#                         [--only fanout|room] [--janus] [--no-build] [--out DIR]
#
# Each run starts a fresh release sfu-server inside a network namespace that
# has only loopback, then:
#   fanout: 1 publisher (VP8 at 1 Mbit/s, 30 fps, plus Opus-sized audio) to
#           --subscribers receive-only peers (default 200) joining at 20 per
#           second, measured for --duration (default 20s) at full load;
#   room:   4 rooms of 5 peers, everyone publishing, for --duration.
# Every figure is the median over --runs runs (default 3). With --janus,
# loadtest/compare-janus.sh then runs the same fanout once against sfu-server
# and once against a Janus VideoRoom (apt-get install janus) for the CPU
# ratio. The load generator shares the machine with the server.
#
# Writes DIR/{fanout,room}-N.{json,txt} (default test-artifacts/bench) and
# DIR/table.md, and prints the table. SFU_SERVER_BIN runs another server
# binary (e.g. an older build, to compare).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=3
subscribers=200
duration=20s
janus=0
build=1
only=""
out=test-artifacts/bench
while [ "$#" -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --subscribers) subscribers="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --janus) janus=1; shift ;;
    --no-build) build=0; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

if [ "${BENCH_INSIDE:-}" = 1 ]; then
  ip link set lo up
  # run_one NAME ARGS...: a fresh server, one sfu-loadtest run against it.
  run_one() {
    local name="$1"
    shift
    local work
    work="$(mktemp -d)"
    "${SFU_SERVER_BIN:-$bin/sfu-server}" --bind 127.0.0.1:0 --udp-port 0 --tcp-port 0 \
      >"$work/server.out" 2>"$out/$name-server.log" &
    local server=$!
    local url=""
    for _ in $(seq 100); do
      url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.out" | head -n 1 || true)"
      [ -n "$url" ] && break
      sleep 0.1
    done
    rm -rf "$work"
    if [ -z "$url" ]; then
      echo "sfu-server did not start" >&2
      kill "$server" 2>/dev/null || true
      return 1
    fi
    "$bin/sfu-loadtest" --url "$url" --server-pid "$server" --no-progress \
      --json "$out/$name.json" "$@" >"$out/$name.txt" 2>&1 || true
    kill -TERM "$server"
    wait "$server" || true
    grep -E 'server CPU|forwarding|server RSS|join time|loss' "$out/$name.txt" | sed "s/^/[$name] /" || true
  }
  for i in $(seq "$runs"); do
    if [ "$only" != room ]; then
      run_one "fanout-$i" --scenario fanout --subscribers "$subscribers" \
        --video-bitrate 1M --ramp 20 --duration "$duration"
    fi
    if [ "$only" != fanout ]; then
      run_one "room-$i" --scenario room --rooms 4 --peers 5 --ramp 20 --duration "$duration"
    fi
  done
  exit 0
fi

if [ "$build" = 1 ]; then
  cargo build --release --bin sfu-server --bin sfu-loadtest
fi
rm -f "$out"/fanout-*.json "$out"/room-*.json "$out"/janus/*.json
netns=(unshare --net)
if [ "$(id -u)" -ne 0 ]; then
  netns=(unshare --map-root-user --net)
fi
BENCH_INSIDE=1 "${netns[@]}" bash "${BASH_SOURCE[0]}" --runs "$runs" \
  --subscribers "$subscribers" --duration "$duration" --only "$only" --out "$out"

if [ "$janus" = 1 ]; then
  if command -v janus >/dev/null 2>&1; then
    bash loadtest/compare-janus.sh "$out/janus" --scenario fanout --subscribers "$subscribers" \
      --video-bitrate 1M --ramp 20 --duration "$duration" >"$out/janus.txt" 2>&1 || true
  else
    echo "janus is not installed; the ratio is not measured" >&2
  fi
fi

python3 - "$out" "$runs" "$subscribers" <<'PY' | tee "$out/table.md"
import glob, json, os, statistics, sys

out, runs, subs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def load(pattern):
    docs = []
    for f in sorted(glob.glob(os.path.join(out, pattern))):
        try:
            docs.append(json.load(open(f)))
        except (OSError, ValueError):
            pass
    return docs

def get(doc, *path):
    for p in path:
        doc = doc.get(p) if isinstance(doc, dict) else None
    return doc

def median(docs, *path):
    values = [v for v in (get(d, *path) for d in docs) if isinstance(v, (int, float))]
    return (statistics.median(values), values) if values else (None, [])

fanout, room = load("fanout-*.json"), load("room-*.json")
rows = []

def row(name, value, values, unit, target, ok, scale=1.0, fmt="{:.1f}"):
    if value is None:
        rows.append((name, "not measured", target, "-"))
        return
    shown = fmt.format(value * scale) + unit
    if len(values) > 1:
        shown += " (runs: " + ", ".join(fmt.format(v * scale) for v in values) + ")"
    rows.append((name, shown, target, "pass" if ok(value * scale) else "FAIL"))

v, vs = median(fanout, "server", "cpu_us_per_forwarded_packet")
row(f"server CPU per forwarded packet, fanout 1 → {subs}, video 1 Mbit/s", v, vs, " µs",
    "≤ 3 µs", lambda x: x <= 3.0, fmt="{:.2f}")

sfu_j, janus_j = load("janus/sfu.json"), load("janus/janus.json")
a = get(sfu_j[0], "server", "cpu_us_per_received_packet") if sfu_j else None
b = get(janus_j[0], "server", "cpu_us_per_received_packet") if janus_j else None
if a and b:
    rows.append(("the same, Janus VideoRoom / ours (CPU per packet received, one run each)",
                 f"{b / a:.2f}× ({b:.1f} against {a:.1f} µs)", "≥ 4×",
                 "pass" if b / a >= 4 else "FAIL"))
else:
    rows.append(("the same, Janus VideoRoom / ours", "not measured (run with --janus)", "≥ 4×", "-"))

v, vs = median(fanout, "server", "forward_latency_p50_us")
row("SFU forwarding latency p50 (server histogram, datagram in → out)", v, vs, " µs",
    "≤ 200 µs", lambda x: x <= 200, fmt="{:.0f}")
v, vs = median(fanout, "server", "forward_latency_p99_us")
row("SFU forwarding latency p99", v, vs, " µs", "≤ 1 ms", lambda x: x <= 1000, fmt="{:.0f}")
v, vs = median(fanout, "server", "rss_per_peer_bytes")
row(f"server RSS per connected peer ({subs + 1} peers)", v, vs, " KiB", "≤ 150 KiB",
    lambda x: x <= 150, scale=1 / 1024, fmt="{:.0f}")
v, vs = median(fanout, "join_time_ms", "p99")
row("join time p99 at 20 joins/s (join to first complete keyframe)", v, vs, " ms",
    "≤ 300 ms", lambda x: x <= 300, fmt="{:.0f}")
rows.append(("scaling, room scenario, workers 1 → 2",
             "not measurable here: the load generator shares the 2 cores (loadtest/scaling.sh "
             "shows the split over Worker threads)", "≥ 1.7×", "-"))
v, vs = median(fanout, "packets", "loss_pct")
row("loss, fanout", v, vs, " %", "< 0.5 %", lambda x: x < 0.5, fmt="{:.3f}")
v, vs = median(room, "packets", "loss_pct")
row("loss, room (4 rooms × 5 peers)", v, vs, " %", "< 0.5 %", lambda x: x < 0.5, fmt="{:.3f}")

print(f"{runs} run(s) of each scenario; medians.\n")
print("| figure | measured | target | result |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
ctx = []
for name, docs in (("fanout", fanout), ("room", room)):
    v, _ = median(docs, "server", "cpu_us_per_forwarded_packet")
    l50, _ = median(docs, "latency_ms", "p50")
    l99, _ = median(docs, "latency_ms", "p99")
    lg, _ = median(docs, "server", "load_generator_cpu_cores")
    cores, _ = median(docs, "server", "cpu_cores")
    f = lambda x, p="{:.2f}": "-" if x is None else p.format(x)
    ctx.append(f"- {name}: server CPU per forwarded packet {f(v)} µs at {f(cores)} cores; "
               f"end-to-end latency p50 {f(l50, '{:.1f}')} ms, p99 {f(l99, '{:.1f}')} ms; "
               f"load generator {f(lg)} cores")
print("\n" + "\n".join(ctx))
PY
