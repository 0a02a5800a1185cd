#!/usr/bin/env bash
# bench/fetch-tails.sh — where hot-fetch latency tails come from: the fetch-zipf scenario against one
# gateway shard (CPU0; emulator and layer-loadgen on CPU1), closed loop at 64 and 16 connections and
# open loop at 30k, 60k and 90k req/s, with the gateway's and the load generator's CPU use (share of one
# core over the run). Prints a table; SKIP_BUILD=1 reuses the release binaries. 127.0.0.1 only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_setup tails
bench_build turbopuffer-emulator layer-gateway layer-loadgen
start emulator 1 X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY
start hot 0 LAYER_LOG=warn -- "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/hot"
HOT=$REPLY HOT_PID=${PIDS[-1]}
auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
for ((s = 0; s < 10000; s += 1000)); do
  jq -cn --argjson s "$s" '{upsert_rows: [range($s; $s + 1000) | {id: ., vector: [(. % 7) / 7, (. % 11) / 11], title: "document \(.)", category: "c\(. % 20)"}], distance_metric: "cosine_distance"}' \
    | curl -sf "${auth[@]}" --data-binary @- "http://$HOT/v2/namespaces/bench-fetch" >/dev/null
done
for id in $(seq 0 2000); do printf 'url = "http://%s/v2/namespaces/bench-fetch/documents/%s"\noutput = "/dev/null"\n' "$HOT" "$id"; done >"$TMP/urls"
curl -sf "${auth[@]}" --parallel --parallel-max 16 -K "$TMP/urls"
printf 'mode\treq/s\tp50\tp99\tp99.9\tmax\tgateway CPU %%\tloadgen CPU %%\n'
for mode in closed-64 closed-16 rate-30000 rate-60000 rate-90000 closed-64; do
  args=(--concurrency 64)
  case $mode in
    closed-16) args=(--concurrency 16) ;;
    rate-*) args=(--rate "${mode#rate-}" --connections 64) ;;
  esac
  g0=$(ticks "$HOT_PID"); t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$TMP/lg.time" taskset -c 1 "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/fetch-zipf.yaml" --target "http://$HOT" \
    --var "api_key=$KEY" "${args[@]}" --duration 10s --format json --out "$TMP/r.json" >/dev/null 2>&1
  g1=$(ticks "$HOT_PID"); t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  lg=$(awk -v w="$wall" '{printf "%.0f", ($1 + $2) / w * 100}' "$TMP/lg.time")
  gw=$(awk -v d=$((g1 - g0)) -v hz="$CLK_TCK" -v w="$wall" 'BEGIN {printf "%.0f", d / hz / w * 100}')
  jq -r --arg m "$mode" --arg g "$gw" --arg l "$lg" '[$m, (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000), (.latency_us.p99_9 / 1000), (.latency_us.max / 1000), $g, $l] | @tsv' "$TMP/r.json"
done
