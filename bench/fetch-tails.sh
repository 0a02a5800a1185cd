#!/usr/bin/env bash
# bench/fetch-tails.sh — where fetch latency tails come from: the fetch-zipf scenario against one
# gateway shard (CPU0; emulator and layer-loadgen on CPU1), closed loop at 64 and 16 connections and
# open loop at fixed rates, with the gateway's and the load generator's CPU use (share of one core
# over the run). Open-loop rows are `timer-R` (tokio's millisecond timer paces sends: up to ~1 ms of
# every latency is the schedule's) or `spin-R` (`--pacing spin`: sends leave within microseconds of
# their instant, so the latency is the gateway's; the load generator's core is busy throughout).
# Two gateways: `hot` (every fetch a hot-cache hit) and `tier` (a 64 KiB hot cache over the default
# NVMe tier holding every document, so most fetches are tier hits). RUNS overrides the row list
# (`gateway:mode ...`); TIER_IO_CPU moves the tier gateway's NVMe I/O thread to that CPU (to see
# what sharing the shard's core costs); GATEWAY_BIN runs another layer-gateway build. Prints a table;
# SKIP_BUILD=1 reuses the release binaries.
# 127.0.0.1 only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_setup tails
bench_build turbopuffer-emulator layer-gateway layer-loadgen
start emulator 1 X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY
GATEWAY_BIN=${GATEWAY_BIN:-$BIN/layer-gateway}
start hot 0 LAYER_LOG=warn -- "$GATEWAY_BIN" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/hot"
HOT=$REPLY HOT_PID=${PIDS[-1]}
start tier 0 LAYER_LOG=warn LAYER_CACHE_HOT_BYTES_PER_SHARD=65536 -- \
  "$GATEWAY_BIN" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/tier"
TIER=$REPLY TIER_PID=${PIDS[-1]}
if [[ -n ${TIER_IO_CPU:-} ]]; then
  for task in /proc/"$TIER_PID"/task/*; do
    [[ $(cat "$task/comm") == layer-nvme-cach* ]] && taskset -p -c "$TIER_IO_CPU" "${task##*/}" >/dev/null
  done
fi
auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
for ((s = 0; s < 10000; s += 1000)); do
  jq -cn --argjson s "$s" '{upsert_rows: [range($s; $s + 1000) | {id: ., vector: [(. % 7) / 7, (. % 11) / 11], title: "document \(.)", category: "c\(. % 20)"}], distance_metric: "cosine_distance"}' \
    | curl -sf "${auth[@]}" --data-binary @- "http://$HOT/v2/namespaces/bench-fetch" >/dev/null
done
# Every id once on both: the hot gateway then holds all of them in its hot cache (a measured
# fetch is a hot hit, never an origin read); the tier gateway holds them in its NVMe tier (its
# 64 KiB hot cache keeps only a few dozen).
for id in $(seq 0 9999); do printf 'url = "http://%s/v2/namespaces/bench-fetch/documents/%s"\noutput = "/dev/null"\n' "$HOT" "$id"; done >"$TMP/urls"
for id in $(seq 0 9999); do printf 'url = "http://%s/v2/namespaces/bench-fetch/documents/%s"\noutput = "/dev/null"\n' "$TIER" "$id"; done >>"$TMP/urls"
curl -sf "${auth[@]}" --parallel --parallel-max 16 -K "$TMP/urls"
RUNS=${RUNS:-hot:closed-64 hot:closed-16 hot:timer-60000 hot:spin-30000 hot:spin-60000 hot:spin-90000 hot:spin-120000 tier:closed-64 tier:closed-16 tier:spin-30000 tier:spin-50000 hot:closed-64}
printf 'gateway\tmode\treq/s\tp50\tp99\tp99.9\tmax\tsend lag p99.9\tpacer lag p99.9\terrors\tgateway CPU %%\tloadgen CPU %%\n'
for row in $RUNS; do
  gateway=${row%%:*} mode=${row#*:}
  case $gateway in
    hot) addr=$HOT pid=$HOT_PID ;;
    tier) addr=$TIER pid=$TIER_PID ;;
    *) log "unknown gateway in RUNS: $row"; exit 1 ;;
  esac
  case $mode in
    closed-*) args=(--concurrency "${mode#closed-}") ;;
    timer-*) args=(--rate "${mode#timer-}" --connections 64 --pacing timer) ;;
    spin-*) args=(--rate "${mode#spin-}" --connections 64 --pacing spin) ;;
    *) log "unknown mode in RUNS: $row"; exit 1 ;;
  esac
  g0=$(ticks "$pid"); t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$TMP/lg.time" taskset -c 1 "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/fetch-zipf.yaml" --target "http://$addr" \
    --var "api_key=$KEY" "${args[@]}" --duration 10s --allow-errors --format json --out "$TMP/r.json" >/dev/null 2>&1
  g1=$(ticks "$pid"); t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  lg=$(awk -v w="$wall" '{printf "%.0f", ($1 + $2) / w * 100}' "$TMP/lg.time")
  gw=$(awk -v d=$((g1 - g0)) -v hz="$CLK_TCK" -v w="$wall" 'BEGIN {printf "%.0f", d / hz / w * 100}')
  jq -r --arg gwn "$gateway" --arg m "$mode" --arg g "$gw" --arg l "$lg" '[$gwn, $m, (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000), (.latency_us.p99_9 / 1000), (.latency_us.max / 1000), (if .send_lag_us then (.send_lag_us.p99_9 / 1000) else "-" end), (if .release_lag_us then (.release_lag_us.p99_9 / 1000) else "-" end), (.errors.connect + .errors.io + .errors.timeout + .unexpected_status), $g, $l] | @tsv' "$TMP/r.json"
done
for g in hot tier; do
  addr=$HOT; [[ $g == tier ]] && addr=$TIER
  curl -sf "http://$addr/metrics" | sed -n "s/^layer_document_cache_events_total{event=\"\([a-z_]*\)\"} /$g \1 /p" || true
done
