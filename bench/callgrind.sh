#!/usr/bin/env bash
# bench/callgrind.sh — user-space instructions per request of layer-gateway builds, counted by
# valgrind's callgrind: repeatable whatever else the machine is doing (wall-clock CPU per request
# moves ±10% between runs on a shared VM; instruction counts do not).
#
#   bench/callgrind.sh [SCENARIO] [GATEWAY_BIN ...]
#
# SCENARIO is a file under bench/scenarios (default query-passthrough); each GATEWAY_BIN (default:
# the release build of this tree) is started in turn under callgrind with one shard against one
# emulator seeded with ROWS (10,000) rows, warmed, zeroed, then driven by layer-loadgen for DURATION
# (20s) at CONCURRENCY (16). Prints instructions per request for each binary (kernel time is not
# counted). UPDATING=1 profiles P1's case, a namespace kept updating (as `bench/compare.sh` sets it
# up): each build first writes a row and waits until it holds a watermark, then the emulator's
# indexer is paused for the namespace and one more row is written through the build, so every
# measured query carries the spliced stable-read predicate (checked in the emulator's request
# log). TIER=1 profiles tier hits (with SCENARIO fetch-zipf): the gateway's hot cache is cut to
# 64 KiB over the default NVMe tier and every document is fetched once before the warm-up, as in
# bench/fetch-tails.sh's tier gateway, and how many measured fetches were tier hits is printed.
# DIMS (16) sets the seeded rows' vector length, and the scenario's `${vector}` (a query vector of
# that length, numbers printed as embedding clients print them: signs mixed, 17 significant
# digits; `query-ann-vector` uses it); ROWS (10000) how many rows are seeded (the emulator answers
# an ANN query by brute force, so a long vector wants fewer).
# NGINX=1 also counts nginx's instructions per request in the same scenario, for scale: one nginx
# process (no master; `proxy_pass` with upstream keep-alive, as bench/compare.sh sets it up) under
# callgrind in front of the same emulator, driven the same way (not with TIER=1: nginx has no
# document cache). It is installed with apt-get when missing.
# KEEP_DUMPS=DIR copies each build's dump there (read it with
# `callgrind_annotate --inclusive=yes FILE`), with the measured request count beside it
# (`.requests`); bench/profile.sh turns both into instructions per request by area. Everything
# stays on 127.0.0.1 and is killed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCENARIO=${1:-query-passthrough}
shift || true
DURATION=${DURATION:-20s}
CONCURRENCY=${CONCURRENCY:-16}
DIMS=${DIMS:-16}
ROWS=${ROWS:-10000}
source "$ROOT/bench/lib.sh"
bench_setup callgrind
command -v valgrind >/dev/null || { log "valgrind is not installed"; exit 1; }
bench_build turbopuffer-emulator layer-gateway layer-loadgen
if [[ ${NGINX:-0} == 1 ]]; then
  [[ ${TIER:-0} != 1 ]] || { log "NGINX=1 does not go with TIER=1: nginx has no document cache"; exit 1; }
  command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
fi
BINS=("$@")
[[ ${#BINS[@]} -gt 0 ]] || BINS=("$BIN/layer-gateway")

start emulator 1 X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY
NS=bench-passthrough
auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
seed_vectors "$EMU" "$NS" "$ROWS" "$DIMS"

# UPDATING=1: makes the gateway at $1 splice its stable-read predicate into every query of $NS
# (build number $2 picks the rows it writes; bench/lib.sh says why each step is needed). Each build
# in turn: the indexer resumed, a stamped row, the watermark, the indexer paused, one more row.
keep_updating() {
  local gw=$1 id=$((ROWS + 2 * $2))
  send_query() {
    curl -sf -o /dev/null -X POST "http://$1/v2/namespaces/$NS/query" -H "Authorization: Bearer $KEY" \
      -H 'Content-Type: application/json' --data-binary "$UPDATING_QUERY"
  }
  updating_indexer "$EMU" "$NS" false || { log "resuming the emulator's indexer failed"; exit 1; }
  updating_write "$gw" "$NS" "$id" "$DIMS" || { log "the stamped write through $gw failed"; exit 1; }
  updating_watermark "$gw" "$NS" || { log "gateway $gw never held a watermark"; exit 1; }
  updating_indexer "$EMU" "$NS" true || { log "pausing the emulator's indexer failed"; exit 1; }
  updating_write "$gw" "$NS" $((id + 1)) "$DIMS" || { log "the unindexed write through $gw failed"; exit 1; }
  updating_seen "$EMU" send_query "$gw" || { log "UPDATING=1 but the queries through $gw carry no stable-read predicate"; exit 1; }
}

VECTOR=$(query_vector "$DIMS")
GW_ENV=(LAYER_LOG=warn)
[[ ${TIER:-0} != 1 ]] || GW_ENV+=(LAYER_CACHE_HOT_BYTES_PER_SHARD=65536)
# The gateway's count of one document-cache event so far.
cache_events() {
  { curl -sf "http://$1/metrics" || true; } | awk -v e="$2" '$1 == "layer_document_cache_events_total{event=\"" e "\"}" {print $2}'
}

# drive ADDR DURATION OUT: the scenario's load on ADDR from CPU1, its summary in OUT.
drive() {
  taskset -c 1 "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/$SCENARIO.yaml" --target "http://$1" \
    --var "api_key=$KEY" --var "ns=$NS" --var "vector=$VECTOR" --concurrency "$CONCURRENCY" --duration "$2" --format json --out "$3" >/dev/null 2>&1
}

# report PID OUT RUN_JSON LABEL DUMP_NAME SUFFIX: stops the process under callgrind and prints its
# instructions per request of the run (keeping the dump as DUMP_NAME under KEEP_DUMPS).
report() {
  local pid=$1 out=$2 run=$3 label=$4 name=$5 suffix=$6 n ir
  sleep 1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  n=$(jq '.all_responses' "$run")
  # The dump taken after the run is "$out.1" (the file written at exit holds the shutdown).
  ir=$(awk '/^summary:/ {s += $2} END {print s}' "$out".1)
  if [[ -n ${KEEP_DUMPS:-} ]]; then
    mkdir -p "$KEEP_DUMPS"
    cp "$out".1 "$KEEP_DUMPS/$name.callgrind"
    echo "$n" >"$KEEP_DUMPS/$name.requests"
  fi
  printf '%s\t%s requests\t%.1fk instructions/request%s\n' "$label" "$n" "$(awk -v a="$ir" -v b="$n" 'BEGIN {print a / b / 1000}')" "$suffix"
}

for i in "${!BINS[@]}"; do
  out=$TMP/callgrind.$i.out
  # Callgrind runs the gateway ~50x slower: the start-up wait is longer than `start` allows.
  env "${GW_ENV[@]}" taskset -c 0 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$out" \
    "${BINS[$i]}" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 \
    --data-dir "$TMP/gw.$i" >"$TMP/gw.$i.log" 2>"$TMP/gw.$i.err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do grep -q "listening on" "$TMP/gw.$i.log" 2>/dev/null && break; sleep 0.1; done
  GW=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$TMP/gw.$i.log" | head -1)
  [[ -n $GW ]] || { log "gateway ${BINS[$i]} did not start: $(tail -3 "$TMP/gw.$i.err")"; exit 1; }
  [[ ${UPDATING:-0} != 1 ]] || keep_updating "$GW" "$i"
  if [[ ${TIER:-0} == 1 ]]; then
    for id in $(seq 0 $((ROWS - 1))); do printf 'url = "http://%s/v2/namespaces/%s/documents/%s"\noutput = "/dev/null"\n' "$GW" "$NS" "$id"; done >"$TMP/urls"
    curl -sf "${auth[@]}" --parallel --parallel-max 16 -K "$TMP/urls" 2>/dev/null || { log "fetching every document once through $GW failed"; exit 1; }
  fi
  drive "$GW" 3s "$TMP/warm.json"
  # Read before the counters are zeroed and after the dump: rendering /metrics is not measured.
  tier0=$(cache_events "$GW" tier_hit)
  callgrind_control -z "$pid" >/dev/null
  drive "$GW" "$DURATION" "$TMP/run.$i.json"
  callgrind_control -d "$pid" >/dev/null
  tier=$(($(cache_events "$GW" tier_hit) - ${tier0:-0}))
  report "$pid" "$out" "$TMP/run.$i.json" "${BINS[$i]}" "$i.$(basename "${BINS[$i]}")" \
    "$([[ ${TIER:-0} != 1 ]] || echo " ($tier tier hits)")"
done

if [[ ${NGINX:-0} == 1 ]]; then
  i=${#BINS[@]}
  out=$TMP/callgrind.$i.out
  # The same wrapper as the gateway's; the wait for start-up is start_nginx's own.
  NGINX_WRAP=(valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$out")
  start_nginx 0 "$EMU"
  unset NGINX_WRAP
  drive "$NGINX_ADDR" 3s "$TMP/warm.json"
  callgrind_control -z "$NGINX_PID" >/dev/null
  drive "$NGINX_ADDR" "$DURATION" "$TMP/run.$i.json"
  callgrind_control -d "$NGINX_PID" >/dev/null
  report "$NGINX_PID" "$out" "$TMP/run.$i.json" "nginx $(nginx -v 2>&1 | sed 's/^nginx version: nginx\///')" "$i.nginx" ""
fi
