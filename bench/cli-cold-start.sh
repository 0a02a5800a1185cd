#!/usr/bin/env bash
# bench/cli-cold-start.sh — cold start of the `layer` CLI against a local gateway, side by side
# with curl of the same route (issue 24's measure: `layer index list` ≤ 2× curl).
#
# Starts the emulator and a gateway (release builds, one shard) on 127.0.0.1, writes NS_COUNT
# (10) namespaces, then times RUNS (20) runs each of `curl -sf …/v2/namespaces` and
# `layer index list -o json` (HOME is a fresh temporary directory: no config file, settings from
# LAYER_BASE_URL / LAYER_API_KEY), alternating, for ROUNDS (2) rounds; prints the medians and
# the ratio. Knobs: RUNS, ROUNDS, NS_COUNT, SKIP_BUILD.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-2}
NS_COUNT=${NS_COUNT:-10}
source "$ROOT/bench/lib.sh"
bench_setup cli-cold-start
bench_build turbopuffer-emulator layer-gateway layer-cli

start emulator 1 X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY
start gateway 0 LAYER_LOG=warn -- "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" \
  --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/gw"
GW=$REPLY
for i in $(seq "$NS_COUNT"); do
  curl -sf -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    --data-binary '{"upsert_rows":[{"id":1,"vector":[0.1,0.2]}],"distance_metric":"cosine_distance"}' \
    "http://$GW/v2/namespaces/cli-cold-$i" >/dev/null
done

mkdir -p "$TMP/home"
export HOME=$TMP/home LAYER_BASE_URL=http://$GW LAYER_API_KEY=$KEY
# Milliseconds of one run of "$@" (output discarded; a failure stops the script).
ms() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
median() { sort -n | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m / 1000}'; }

"$BIN/layer" index list -o json | jq -e "length >= 0" >/dev/null
echo "| round | curl median ms | layer median ms | layer / curl |"
echo "|---|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
  : >"$TMP/curl" && : >"$TMP/layer"
  for _ in $(seq "$RUNS"); do
    ms curl -sf -H "Authorization: Bearer $KEY" "http://$GW/v2/namespaces" >>"$TMP/curl"
    ms "$BIN/layer" index list -o json >>"$TMP/layer"
  done
  c=$(median <"$TMP/curl")
  l=$(median <"$TMP/layer")
  echo "| $r | $c | $l | $(awk -v a="$l" -v b="$c" 'BEGIN {printf "%.2f", a / b}') |"
done
