#!/usr/bin/env bash
# bench/cpu-ab.sh — two gateway builds' CPU per request against nginx, in alternating rounds of
# bench/cpu-split.sh, with medians. One cpu-split run moves by several µs per request from run to
# run on a shared VM (nginx's own figure too), more than most changes are worth; this takes the
# ratio within each run and the median over many. Even those medians differ by up to ~7% between
# two copies of one binary in a 7-round run (bench/results/2026-12-08-one-cut.md, A/A): check a
# smaller difference with A and B swapped.
#
#   A=/work/bench-bins/gw-old B=/work/bench-bins/gw-new ROUNDS=7 bench/cpu-ab.sh
#
# A and B are gateway binaries (B defaults to this tree's release build, built first unless
# SKIP_BUILD=1; A has no default). Round n runs cpu-split.sh once per build, A first in odd rounds
# and B first in even ones; each run starts its own emulator, gateway and nginx and measures the
# gateway, then nginx (SCENARIO, DIMS and ROWS pass through to cpu-split.sh). About 30 s per run.
# Prints every round and the medians per build (bench/cpu_ab_summary.py); LOG=file keeps the raw
# cpu-split output.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}
ROUNDS=${ROUNDS:-7}
[[ -n ${A:-} ]] || { echo "cpu-ab.sh: set A to the first gateway binary" >&2; exit 2; }
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  cargo build --release -q -p turbopuffer-emulator -p layer-gateway -p layer-loadgen
fi
B=${B:-$CARGO_TARGET_DIR/release/layer-gateway}
for bin in "$A" "$B"; do [[ -x $bin ]] || { echo "cpu-ab.sh: $bin is not executable" >&2; exit 2; }; done
LOG=${LOG:-$(mktemp "${TMPDIR:-/tmp}/layer-cpu-ab.XXXXXX")}
: >"$LOG"
# Labels: the binaries' file names (A/B when they are the same name).
label_a=$(basename "$A"); label_b=$(basename "$B")
[[ $label_a == "$label_b" ]] && { label_a=A; label_b=B; }
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=(a b); else order=(b a); fi
  for which in "${order[@]}"; do
    if [[ $which == a ]]; then bin=$A label=$label_a; else bin=$B label=$label_b; fi
    echo "== $label round $round" >>"$LOG"
    echo "cpu-ab.sh: round $round/$ROUNDS, $label" >&2
    SKIP_BUILD=1 GATEWAY_BIN=$bin "$ROOT/bench/cpu-split.sh" >>"$LOG" 2>/dev/null
  done
done
python3 "$ROOT/bench/cpu_ab_summary.py" "$LOG"
echo >&2 "cpu-ab.sh: raw runs in $LOG"
