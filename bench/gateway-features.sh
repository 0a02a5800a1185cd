#!/usr/bin/env bash
# bench/gateway-features.sh — Layer-only paths that have no nginx or direct equivalent, measured
# on one machine in one run:
#
#   fetch-hot    GET /documents/{id}, Zipf ids, hot cache warmed first (no upstream round trip)
#   fetch-cold   the same against a gateway with the cache tier disabled (every fetch is a
#                strong origin read)
#   fetch-tier   the same against a gateway whose hot cache (TIER_HOT_BYTES, 64 KiB) is far below
#                the working set, so most hits are read from the NVMe cache tier
#   scatter-8    ANN top 10 on an 8-shard index, every leg delayed DELAY_MS by an emulator fault:
#                latency against the slowest leg (target <= 1.1x): the same 8 legs sent straight to
#                the emulator at once (layer-loadgen `fanout: 8`), timed until the last answers
#
# The gateway runs one shard on PROXY_CPU; the emulator and layer-loadgen share LOAD_CPU.
# Writes bench/results/<YYYY-MM-DD>-gateway-features.md. Knobs: DURATION (10s), ROWS (10000),
# DELAY_MS (50), SKIP_BUILD (0), TIER_HOT_BYTES (65536), BASELINE_BIN (unset: with a layer-gateway path, a second hot
# gateway of that build is warmed the same way and fetch-hot alternates between the two, twice
# each, so a change is judged against its baseline in one run). Everything stays on 127.0.0.1 and is killed by PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10s}
ROWS=${ROWS:-10000}
DELAY_MS=${DELAY_MS:-50}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
source "$ROOT/bench/lib.sh"
bench_setup features
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-gateway-features.md}
bench_build turbopuffer-emulator layer-gateway layer-loadgen


start emulator "$LOAD_CPU" X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY
cat >"$TMP/layer.yaml" <<YAML
indexes:
  - name: bench-scatter
    shards: 8
    consistency: strong
YAML
start hot "$PROXY_CPU" LAYER_LOG=warn -- "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" \
  --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/hot" --config "$TMP/layer.yaml"
HOT=$REPLY HOT_PID=${PIDS[-1]}
start cold "$PROXY_CPU" LAYER_LOG=warn LAYER_CACHE_TIER=disabled LAYER_CACHE_HOT_BYTES_PER_SHARD=0 -- \
  "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/cold"
COLD=$REPLY COLD_PID=${PIDS[-1]}
# The NVMe-tier-hit gateway: the default tier (NVMe files under --data-dir), a hot cache that
# holds a few hundred of the documents.
TIER_HOT_BYTES=${TIER_HOT_BYTES:-65536}
start tier "$PROXY_CPU" LAYER_LOG=warn LAYER_CACHE_HOT_BYTES_PER_SHARD="$TIER_HOT_BYTES" -- \
  "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/tier"
TIER=$REPLY TIER_PID=${PIDS[-1]}
BASELINE_BIN=${BASELINE_BIN:-}
if [[ -n $BASELINE_BIN ]]; then
  [[ -x $BASELINE_BIN ]] || { log "BASELINE_BIN is not an executable: $BASELINE_BIN"; exit 1; }
  start hot-baseline "$PROXY_CPU" LAYER_LOG=warn -- "$BASELINE_BIN" --listen 127.0.0.1:0 --upstream-url "http://$EMU" \
    --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/hot-baseline" --config "$TMP/layer.yaml"
  BASE=$REPLY BASE_PID=${PIDS[-1]}
fi

auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
log "seeding $ROWS documents and the 8-shard index"
for ((s = 0; s < ROWS; s += 1000)); do
  jq -cn --argjson s "$s" --argjson n "$ROWS" \
    '{upsert_rows: [range($s; [$s + 1000, $n] | min) | {id: ., vector: [(. % 7) / 7, (. % 11) / 11], title: "document \(.)", category: "c\(. % 20)"}], distance_metric: "cosine_distance"}' \
    >"$TMP/batch.json"
  curl -sf "${auth[@]}" --data-binary @"$TMP/batch.json" "http://$HOT/v2/namespaces/bench-fetch" >/dev/null
  curl -sf "${auth[@]}" --data-binary @"$TMP/batch.json" "http://$HOT/v2/namespaces/bench-scatter" >/dev/null
done

RAW=$TMP/raw.tsv
run() { # LABEL ADDR PID SCENARIO CONCURRENCY
  local p0 p1
  p0=$(ticks "$3")
  taskset -c "$LOAD_CPU" "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/$4.yaml" --target "http://$2" \
    --var "api_key=$KEY" --concurrency "$5" --duration "$DURATION" --format json --out "$TMP/$1.json" >/dev/null 2>&1
  p1=$(ticks "$3")
  jq -r --arg l "$1" --argjson dp $((p1 - p0)) --argjson hz "$CLK_TCK" \
    '[$l, (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000), (.latency_us.p99_9 / 1000), (.latency_us.max / 1000),
      (($dp / $hz * 1e6) / ([.all_responses, 1] | max) | . * 10 | round / 10)] | @tsv' "$TMP/$1.json" >>"$RAW"
  log "$(tail -1 "$RAW")"
}
# Every id once, so a measured fetch is a hot hit: with only part of them warm, the Zipf tail's
# first fetches during the run were strong origin reads (milliseconds each, and emulator work on
# the load generator's core) inside a "hot" measurement.
log "warming the hot cache ($ROWS documents)"
for id in $(seq 0 $((ROWS - 1))); do
  printf 'url = "http://%s/v2/namespaces/bench-fetch/documents/%s"\noutput = "/dev/null"\n' "$HOT" "$id"
  [[ -n $BASELINE_BIN ]] && printf 'url = "http://%s/v2/namespaces/bench-fetch/documents/%s"\noutput = "/dev/null"\n' "$BASE" "$id"
done >"$TMP/hot-urls"
curl -sf "${auth[@]}" --parallel --parallel-max 16 -K "$TMP/hot-urls"
run fetch-hot "$HOT" "$HOT_PID" fetch-zipf 64
if [[ -n $BASELINE_BIN ]]; then
  run fetch-hot-baseline "$BASE" "$BASE_PID" fetch-zipf 64
  run fetch-hot-2 "$HOT" "$HOT_PID" fetch-zipf 64
  run fetch-hot-baseline-2 "$BASE" "$BASE_PID" fetch-zipf 64
fi
run fetch-cold "$COLD" "$COLD_PID" fetch-zipf 64
# Fill the tier gateway's NVMe tier with every document (each miss backfills it), then measure.
log "filling the NVMe tier of the tier gateway ($ROWS documents)"
for ((id = 0; id < ROWS; id++)); do printf 'url = "http://%s/v2/namespaces/bench-fetch/documents/%s"\noutput = "/dev/null"\n' "$TIER" "$id"; done >"$TMP/tier-urls"
curl -sf "${auth[@]}" --parallel --parallel-max 16 -K "$TMP/tier-urls"
# `event count` for hot hits, tier hits and misses (0 when the counter does not exist yet).
tier_events() {
  curl -sf "http://$TIER/metrics" | awk '
    /^layer_document_cache_events_total\{event="(hot_hit|tier_hit|miss)"\}/ {
      match($0, /event="[a-z_]+"/); n[substr($0, RSTART + 7, RLENGTH - 8)] = $2 }
    END { printf "hot_hit %d\ntier_hit %d\nmiss %d\n", n["hot_hit"], n["tier_hit"], n["miss"] }'
}
TIER_BEFORE=$(tier_events)
run fetch-tier "$TIER" "$TIER_PID" fetch-zipf 64
TIER_AFTER=$(tier_events)
# Every query leg waits DELAY_MS upstream. The emulator models Turbopuffer's 16-query budget per
# namespace; lift it here so the measurement is the gateway's fan-out, not upstream admission.
curl -sf "${auth[@]}" -d '{"query_permits":4096}' "http://$EMU/_emu/config" >/dev/null
curl -sf "${auth[@]}" -d "{\"rules\":[{\"route\":\"query\",\"delay_ms\":$DELAY_MS}]}" "http://$EMU/_emu/faults" >/dev/null
run scatter-8 "$HOT" "$HOT_PID" scatter-8 1
# The slowest-leg baseline: one shard's leg sent straight to the emulator under the same delay.
sed -e 's|"top_k":10}|"top_k":10,"filters":["_hevlayer_shard","Eq",0]}|' "$ROOT/bench/scenarios/scatter-8.yaml" >"$TMP/leg.yaml"
EMU_PID=$(pgrep -f "turbopuffer-emulator --listen 127.0.0.1:0 --api-key $KEY" | head -1)
p0=$(ticks "$EMU_PID")
taskset -c "$LOAD_CPU" "$BIN/layer-loadgen" --scenario "$TMP/leg.yaml" --target "http://$EMU" --var "api_key=$KEY" \
  --concurrency 1 --duration "$DURATION" --format json --out "$TMP/leg.json" >/dev/null 2>&1
jq -r '["one-leg-direct", (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000), (.latency_us.p99_9 / 1000), (.latency_us.max / 1000), "-"] | @tsv' "$TMP/leg.json" >>"$RAW"
log "$(tail -1 "$RAW")"
# The slowest leg itself: all 8 shards' legs sent straight to the emulator at once (layer-loadgen's
# fanout), each group timed until its last answer, under the same delay and the same queueing of
# eight legs on the emulator's thread as the gateway's fan-out.
sed -e 's|"top_k":10}|"top_k":10,"filters":["_hevlayer_shard","Eq",${leg}]}|' "$ROOT/bench/scenarios/scatter-8.yaml" >"$TMP/legs.yaml"
echo "fanout: 8" >>"$TMP/legs.yaml"
taskset -c "$LOAD_CPU" "$BIN/layer-loadgen" --scenario "$TMP/legs.yaml" --target "http://$EMU" --var "api_key=$KEY" \
  --concurrency 1 --duration "$DURATION" --format json --out "$TMP/legs.json" >/dev/null 2>&1
jq -r '["slowest-of-8-direct", (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000), (.latency_us.p99_9 / 1000), (.latency_us.max / 1000), "-"] | @tsv' "$TMP/legs.json" >>"$RAW"
log "$(tail -1 "$RAW")"
curl -sf "${auth[@]}" -X DELETE "http://$EMU/_emu/faults" >/dev/null
log "seeding the hybrid-text namespace"
jq -cn --argjson n 2000 '{upsert_rows: [range(0; $n) | {id: ., title: "document number \(.) of the \(["seven", "eleven", "twelve"][. % 3]) series"}],
  schema: {title: {type: "string", full_text_search: true, fuzzy: true}}}' >"$TMP/hybrid.json"
curl -sf "${auth[@]}" --data-binary @"$TMP/hybrid.json" "http://$HOT/v2/namespaces/bench-hybrid" >/dev/null
run hybrid-text "$HOT" "$HOT_PID" hybrid-text 8

col() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l {print $c}' "$RAW"; }
{
  echo "# gateway-only paths: fetch (hot and cold) and 8-shard scatter"
  echo
  echo "Generated by \`bench/gateway-features.sh\` on $(date -u '+%F %H:%M') UTC, commit $(git -C "$ROOT" rev-parse --short HEAD)."
  echo
  echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "- One gateway shard on CPU$PROXY_CPU; the emulator and layer-loadgen on CPU$LOAD_CPU; $ROWS documents; closed loop for $DURATION."
  echo "- fetch-hot: Zipf(1.0) ids, 64 connections, every id fetched once before (so every measured fetch is a hot hit). fetch-cold: the same with the cache disabled (every fetch is a strong origin read)."
  echo "- fetch-tier: the same against a gateway with a ${TIER_HOT_BYTES}-byte hot cache and the default NVMe tier, every document fetched once before (so the tier holds them all). Its cache events during the run (\`layer_document_cache_events_total\`, after − before): $(join <(echo "$TIER_BEFORE" | sort) <(echo "$TIER_AFTER" | sort) | awk '{printf "%s%s %d", sep, $1, $3 - $2; sep = ", "}')."
  echo "- scatter-8: ANN top 10 over an 8-shard index, 1 connection, emulator query permits lifted, every upstream leg delayed ${DELAY_MS} ms by an emulator fault; the slowest leg is therefore >= ${DELAY_MS} ms."
  echo
  [[ -n $BASELINE_BIN ]] && echo "- fetch-hot-baseline: \`$BASELINE_BIN\`, started and warmed like the hot gateway; runs alternate hot, baseline, hot, baseline."
  echo
  echo "| run | req/s | p50 ms | p99 ms | p99.9 ms | max ms | gateway CPU µs/req |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  while IFS=$'\t' read -r l r p50 p99 p999 mx cpu; do echo "| $l | $r | $p50 | $p99 | $p999 | $mx | $cpu |"; done <"$RAW"
  echo
  echo "**scatter-8 p50 / the slowest of the same 8 legs sent directly at once (slowest-of-8-direct p50): $(awk -v a="$(col scatter-8 3)" -v d="$(col slowest-of-8-direct 3)" 'BEGIN {printf "%.3f", a / d}')** (the goal's ratio)."
  echo
  echo "scatter-8 p50 / one leg sent directly under the same delay (one-leg-direct p50): $(awk -v a="$(col scatter-8 3)" -v d="$(col one-leg-direct 3)" 'BEGIN {printf "%.3f", a / d}'); against the injected ${DELAY_MS} ms floor: $(awk -v a="$(col scatter-8 3)" -v d="$DELAY_MS" 'BEGIN {printf "%.3f", a / d}')."
  echo
  echo "The emulator runs one thread on a core it shares with the load generator, so the eight legs' own compute (a filtered scan per leg) queues there: slowest-of-8-direct has the same queueing, one-leg-direct does not. hybrid-text: 8 connections, a 2,000-document namespace, three typo'd tokens (4 legs fused upstream by RRF)."
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
