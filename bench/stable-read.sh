#!/usr/bin/env bash
# bench/stable-read.sh — the cost of a stable read, in one run on one machine:
#
#   passthrough  layer-loadgen → layer-gateway (LAYER_DEFAULT_CONSISTENCY=strong) → emulator
#   stable-read  layer-loadgen → layer-gateway (stable reads, namespace updating)  → emulator
#
# Both gateways are the same binary with one shard on PROXY_CPU; the emulator and the load
# generator share LOAD_CPU. The namespace is written through the stable-read gateway (so rows
# carry the stamp), observed stable, then its indexer is paused and one more row is written: every
# query through that gateway now carries the watermark predicate and eventual consistency (the
# script checks the emulator's request log). Rounds interleave; everything stays on 127.0.0.1.
#
# Writes bench/results/<YYYY-MM-DD>-stable-read.md. Knobs: CONCURRENCY (64), DURATION (10s),
# WARMUP (2s), ROUNDS (3), ROWS (10000), PROXY_CPU (0), LOAD_CPU (1), SKIP_BUILD (0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-10000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}
BIN=$CARGO_TARGET_DIR/release
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-stable-read.md}
KEY=bench-$RANDOM$RANDOM
NS=bench-stable-read
CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/layer-stable.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release -q -p turbopuffer-emulator -p layer-gateway -p layer-loadgen)
fi

# start NAME CPU ENV... -- ARGV... : starts a process that prints "listening on http://ADDR".
start() {
  local name=$1 cpu=$2
  shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" taskset -c "$cpu" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    grep -q "listening on" "$TMP/$name.out" 2>/dev/null && break
    sleep 0.05
  done
  REPLY=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$TMP/$name.out" | head -1)
  [[ -n $REPLY ]] || { log "$name did not start: $(cat "$TMP/$name.err")"; exit 1; }
}

start emulator "$LOAD_CPU" X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY; EMU_PID=${PIDS[-1]}
start stable "$PROXY_CPU" CONSISTENCY_POLL_INTERVAL_MS=100 LAYER_LOG=warn -- \
  "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 \
  --data-dir "$TMP/gw-stable"
STABLE=$REPLY; STABLE_PID=${PIDS[-1]}
start passthrough "$PROXY_CPU" LAYER_DEFAULT_CONSISTENCY=strong LAYER_LOG=warn -- \
  "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 \
  --data-dir "$TMP/gw-pass"
PASS=$REPLY; PASS_PID=${PIDS[-1]}

auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
log "seeding $ROWS rows through the stable-read gateway"
for ((start_id = 0; start_id < ROWS; start_id += 1000)); do
  jq -cn --argjson s "$start_id" --argjson n "$ROWS" \
    '{upsert_rows: [range($s; [$s + 1000, $n] | min) | {id: ., vector: [(. % 7) / 7, (. % 11) / 11], category: "c\(. % 20)"}], distance_metric: "cosine_distance"}' \
    | curl -sf "${auth[@]}" --data-binary @- "http://$STABLE/v2/namespaces/$NS" >/dev/null
done
for _ in $(seq 200); do
  curl -sf "${auth[@]}" "http://$STABLE/v2/namespaces/$NS/metadata" | jq -e '.layer.is_stable' >/dev/null && break
  sleep 0.05
done
curl -sf "${auth[@]}" -d "{\"namespace\":\"$NS\",\"paused\":true}" "http://$EMU/_emu/indexer" >/dev/null
curl -sf "${auth[@]}" -d '{"upsert_rows":[{"id":999999,"vector":[1,0],"category":"new"}]}' "http://$STABLE/v2/namespaces/$NS" >/dev/null
curl -sf "${auth[@]}" -X DELETE "http://$EMU/_emu/requests" >/dev/null
curl -sf "${auth[@]}" -d '{"filters":["id","Eq",4242],"rank_by":["id","asc"],"top_k":1}' "http://$STABLE/v2/namespaces/$NS/query" -D "$TMP/h" >/dev/null
sent=$(curl -sf "${auth[@]}" "http://$EMU/_emu/requests?limit=5" | jq -r '[.requests[] | select(.path | endswith("/query"))][-1].body')
grep -q '_hevlayer_upserted_at' <<<"$sent" || { log "no predicate was injected: $sent"; exit 1; }
log "stable-read gateway sends: $sent"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RAW=$TMP/raw.tsv
for ((round = 1; round <= ROUNDS; round++)); do
  order=(passthrough stable-read)
  ((round % 2 == 0)) && order=(stable-read passthrough)
  for t in "${order[@]}"; do
    if [[ $t == stable-read ]]; then addr=$STABLE pid=$STABLE_PID; else addr=$PASS pid=$PASS_PID; fi
    p0=$(ticks "$pid")
    taskset -c "$LOAD_CPU" "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/query-passthrough.yaml" \
      --target "http://$addr" --var "ns=$NS" --var "api_key=$KEY" --concurrency "$CONCURRENCY" \
      --warmup "$WARMUP" --duration "$DURATION" --format json --out "$TMP/$t-$round.json" >/dev/null 2>&1
    p1=$(ticks "$pid")
    jq -r --arg r "$round" --arg t "$t" --argjson dp $((p1 - p0)) --argjson hz "$CLK_TCK" \
      '[$r, $t, (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000),
        (($dp / $hz * 1e6) / ([.all_responses, 1] | max) | . * 10 | round / 10)] | @tsv' \
      "$TMP/$t-$round.json" >>"$RAW"
    log "round $round $t: $(tail -1 "$RAW")"
  done
done

med() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v t="$1" -v c="$2" '$2 == t {print $c}' "$RAW" | med; }
{
  echo "# stable-read: the cost of the watermark predicate, same run"
  echo
  echo "Generated by \`bench/stable-read.sh\` on $(date -u '+%F %H:%M') UTC, commit $(git -C "$ROOT" rev-parse --short HEAD)."
  echo
  echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "- Same gateway binary, one shard each on CPU$PROXY_CPU; emulator and layer-loadgen on CPU$LOAD_CPU; $ROWS rows; closed loop, $CONCURRENCY connections, $WARMUP warm-up + $DURATION, $ROUNDS interleaved rounds; medians."
  echo "- **passthrough**: \`LAYER_DEFAULT_CONSISTENCY=strong\` (the body is validated and forwarded unchanged)."
  echo "- **stable-read**: the namespace is updating, so every query is rewritten to eventual consistency with the predicate ANDed in. Sent upstream: \`$sent\`"
  echo
  echo "| path | req/s | p50 ms | p99 ms | gateway CPU µs/req |"
  echo "|---|---:|---:|---:|---:|"
  for t in passthrough stable-read; do
    echo "| $t | $(col "$t" 3) | $(col "$t" 4) | $(col "$t" 5) | $(col "$t" 6) |"
  done
  echo
  echo "Added by the stable read: $(awk -v a="$(col stable-read 6)" -v b="$(col passthrough 6)" 'BEGIN {printf "%.1f", a - b}') µs of gateway CPU per request, $(awk -v a="$(col stable-read 4)" -v b="$(col passthrough 4)" 'BEGIN {printf "%.3f", a - b}') ms at p50."
  echo
  echo '```'
  printf 'round\tpath\treq_s\tp50_ms\tp99_ms\tgw_us_req\n'
  cat "$RAW"
  echo '```'
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
