#!/usr/bin/env bash
# Runs each fuzz target for a while, one after another, and prints
# libFuzzer's final figures per target.
#
# Usage: fuzz/run.sh [seconds-per-target] [target...]
#   seconds-per-target  default 60
#   target              default: all five (signaling_message sdp demux
#                       ice_tcp_framing rtp_rtcp)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only a stable toolchain is
# installed here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags to
# stable rustc. demux and sdp build a Peer (`rtc` connection, certificate,
# SDP answer) per input, so they run without AddressSanitizer (-s none) to
# get a useful rate; our crates forbid unsafe code. The others run with
# AddressSanitizer.
#
# New inputs go to fuzz/target/corpus/<target>/ (the checked-in seeds in
# fuzz/corpus/<target>/ are read, not written); crashes to
# fuzz/artifacts/<target>/. Add a crashing input to fuzz/corpus/<target>/
# once fixed: `cargo test -p sfu --test fuzz_corpus` (and
# `-p signaling --test fuzz_corpus`) replays every corpus file on stable.
# Logs: fuzz/target/logs/<target>.log. Runs under `nice -n 10`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(signaling_message sdp demux ice_tcp_framing rtp_rtcp)
export RUSTC_BOOTSTRAP=1
triple="$(rustc -vV | sed -n 's/^host: //p')"
mkdir -p target/logs

sanitizer() {
  case "$1" in
    demux | sdp) echo none ;;
    *) echo address ;;
  esac
}

# Build everything first, so that the runs test one state of the code.
for t in "${targets[@]}"; do
  nice -n 10 cargo fuzz build -O -s "$(sanitizer "$t")" "$t"
  # The next build may replace the binary (another sanitizer): keep a copy.
  cp "target/$triple/release/$t" "target/$t.fuzz"
done

for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  bin="target/$t.fuzz"
  log="target/logs/$t.log"
  echo "== $t: ${seconds}s =="
  started=$(date +%s)
  set +e
  nice -n 10 "$bin" "target/corpus/$t" "corpus/$t" \
    -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" -rss_limit_mb=4096 >"$log" 2>&1
  status=$?
  set -e
  elapsed=$(( $(date +%s) - started ))
  final=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  files=$(find "target/corpus/$t" "corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f | wc -l)
  echo "$t: exit $status, ${elapsed}s, ${execs:-?} execs, ${rate:-?} exec/s, corpus files ${files}, crash files ${crashes}"
  echo "$t: ${final:-no DONE line (see $log)}"
done
