#!/usr/bin/env bash
# Same load against sfu-server and against a Janus VideoRoom, side by side,
# on this machine. Everything runs inside a private network namespace: the
# load generator and sfu-server use 127.0.0.1; Janus, which never gathers ICE
# candidates on loopback, gets 198.51.100.1 on a veth pair that exists only in
# that namespace (local delivery; nothing can leave it).
#
# Usage: loadtest/compare-janus.sh [OUT_DIR] [sfu-loadtest flags...]
#   default flags: --scenario fanout --subscribers 100 --duration 30s
# Needs: cargo build --release --bin sfu-server --bin sfu-loadtest;
#        apt-get install -y janus. SFU_SERVER_BIN picks another server binary.
# Writes OUT_DIR/{sfu,janus}.{txt,json,html} and prints the ratios.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=test-artifacts/compare-janus
if [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; then
  out="$1"
  shift
fi
flags=("$@")
if [ "${#flags[@]}" -eq 0 ]; then
  flags=(--scenario fanout --subscribers 100 --duration 30s)
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

if [ "${LT_INSIDE:-}" = 1 ]; then
  ip link set lo up
  ip link add lt0 type veth peer name lt1
  ip addr add 198.51.100.1/32 dev lt0
  ip link set lt0 up
  ip link set lt1 up

  wait_for() { # URL
    for _ in $(seq 100); do
      if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
        return 0
      fi
      sleep 0.1
    done
    echo "$1 did not come up" >&2
    return 1
  }

  echo "== sfu-server"
  "${SFU_SERVER_BIN:-target/release/sfu-server}" --bind 127.0.0.1:8080 --udp-port 7882 \
    >"$out/sfu-server.log" 2>&1 &
  server=$!
  wait_for http://127.0.0.1:8080/healthz
  target/release/sfu-loadtest --url http://127.0.0.1:8080 "${flags[@]}" --no-progress \
    --json "$out/sfu.json" --html "$out/sfu.html" | tee "$out/sfu.txt" || true
  kill -TERM "$server"
  wait "$server" || true

  echo "== janus"
  JANUS_ICE_ENFORCE=198.51.100.1 loadtest/janus/janus.sh >"$out/janus.log" 2>&1 &
  janus=$!
  wait_for http://127.0.0.1:8088/janus/info
  target/release/sfu-loadtest --target janus --url http://127.0.0.1:8088/janus "${flags[@]}" \
    --bind-ip 198.51.100.1 \
    --no-progress --json "$out/janus.json" --html "$out/janus.html" | tee "$out/janus.txt" || true
  kill -TERM "$janus"
  wait "$janus" || true
  exit 0
fi

netns=(unshare --net)
if [ "$(id -u)" -ne 0 ]; then
  netns=(unshare --map-root-user --net)
fi
LT_INSIDE=1 "${netns[@]}" bash "${BASH_SOURCE[0]}" "$out" "${flags[@]}"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
r = {k: json.load(open(f"{out}/{k}.json")) for k in ("sfu", "janus")}
def g(k, *path):
    v = r[k]
    for p in path:
        v = v.get(p) if isinstance(v, dict) else None
    return v
rows = [
    ("server CPU µs per packet received by subscribers", ("server", "cpu_us_per_received_packet")),
    ("server CPU cores at full load", ("server", "cpu_cores")),
    ("server RSS growth per peer (KiB)", ("server", "rss_per_peer_bytes")),
    ("latency p50 (ms)", ("latency_ms", "p50")),
    ("latency p99 (ms)", ("latency_ms", "p99")),
    ("loss (%)", ("packets", "loss_pct")),
    ("join time p50 (ms)", ("join_time_ms", "p50")),
    ("peers ok / attempted", None),
]
print(f"\n{'':52} {'sfu-server':>12} {'Janus':>12} {'Janus/sfu':>10}")
for name, path in rows:
    if path is None:
        a = f"{g('sfu','peers','succeeded')}/{g('sfu','peers','attempted')}"
        b = f"{g('janus','peers','succeeded')}/{g('janus','peers','attempted')}"
        print(f"{name:52} {a:>12} {b:>12}")
        continue
    a, b = g("sfu", *path), g("janus", *path)
    if "KiB" in name:
        a = a / 1024 if a is not None else None
        b = b / 1024 if b is not None else None
    ratio = f"{b / a:.2f}" if a and b is not None else "-"
    fa = f"{a:.2f}" if a is not None else "-"
    fb = f"{b:.2f}" if b is not None else "-"
    print(f"{name:52} {fa:>12} {fb:>12} {ratio:>10}")
PY
