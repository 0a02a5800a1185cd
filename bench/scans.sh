#!/usr/bin/env bash
# bench/scans.sh — count and values scan throughput (rows/s) from origin and from the cache,
# plus the warm that fills the cache, on one machine in one run (release builds).
#
#   count/origin    POST /scans mode count, source origin (one upstream Count aggregation)
#   count/cache     the same over the warmed NVMe cache (gateway-side filter evaluation)
#   values/origin   mode values, source origin: keyset pages of PAGE rows, histogram in the gateway
#   values/cache    the same over the cache
#   ids/origin, ids/cache   mode ids
#   warm            POST /warm?page_size=PAGE: origin pages written into the NVMe tier
#   snapshot job    POST /snapshots {field: category, source: origin | cache}: a facet histogram
#
# rows/s = documents in the namespace (every one is read or evaluated) / wall time of the scan
# (jobs: from the create call until GET /scans/{id} first reports completed; polled every 10 ms).
# The gateway runs one shard on PROXY_CPU; the emulator shares LOAD_CPU with curl.
# Knobs: ROWS (100000), PAGE (5000), REPEAT (3, the median is reported), SKIP_BUILD (0).
# Writes bench/results/<YYYY-MM-DD>-scans.md. Everything stays on 127.0.0.1, killed by PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-100000}
PAGE=${PAGE:-5000}
REPEAT=${REPEAT:-3}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
source "$ROOT/bench/lib.sh"
bench_setup scans
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-scans.md}
NS=bench-scans
bench_build turbopuffer-emulator layer-gateway

start emulator "$LOAD_CPU" X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY EMU_PID=${PIDS[-1]}
start gateway "$PROXY_CPU" LAYER_LOG=warn LAYER_CACHE_POPULATE_MAX_IDS=0 CONSISTENCY_POLL_INTERVAL_MS=100 \
  CONSISTENCY_STABLE_POLL_INTERVAL_MS=500 -- "$BIN/layer-gateway" --listen 127.0.0.1:0 \
  --upstream-url "http://$EMU" --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/gw"
GW=$REPLY GW_PID=${PIDS[-1]}

auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
log "seeding $ROWS documents"
for ((s = 0; s < ROWS; s += 2000)); do
  jq -cn --argjson s "$s" --argjson n "$ROWS" \
    '{upsert_rows: [range($s; [$s + 2000, $n] | min) | {id: "d\(.)", category: "c\(. % 20)", n: (. % 1000), tags: ["t\(. % 3)", "t\(. % 7)"], sku: "sku-\(.)", title: "document \(.) about things"}]}' \
    >"$TMP/batch.json"
  curl -sf "${auth[@]}" --data-binary @"$TMP/batch.json" "http://$GW/v2/namespaces/$NS" >/dev/null
done
seeded=$(date +%s%3N)
for _ in $(seq 600); do
  wm=$(curl -sf "${auth[@]}" "http://$GW/v2/namespaces/$NS/metadata" | jq -r '.layer.stable_as_of // 0')
  ((wm > seeded)) && break
  sleep 0.1
done
((wm > seeded)) || { log "the watermark never covered the seed"; exit 1; }

now_ns() { date +%s%N; }
# One count scan; prints elapsed ms and checks the answer.
count_ms() { # SOURCE FILTER EXPECT
  local t0 t1 body
  t0=$(now_ns)
  body=$(curl -sf "${auth[@]}" -d "{\"mode\":\"count\",\"source\":\"$1\",\"filters\":$2,\"timeout_seconds\":300}" \
    "http://$GW/v2/namespaces/$NS/scans")
  t1=$(now_ns)
  [[ $(jq -r .count <<<"$body") == "$3" ]] || { log "count $1 $2: $body (want $3)"; exit 1; }
  [[ $(jq -r .served_by <<<"$body") == "$1" ]] || { log "served_by: $body"; exit 1; }
  echo $(((t1 - t0) / 1000000))
}
# One job (ids or values) to completion; prints elapsed ms.
job_ms() { # BODY
  local t0 t1 id st
  t0=$(now_ns)
  id=$(curl -sf "${auth[@]}" -d "$1" "http://$GW/v2/namespaces/$NS/scans" | jq -r .id)
  while :; do
    st=$(curl -sf "${auth[@]}" "http://$GW/v2/namespaces/$NS/scans/$id" | jq -r .status)
    [[ $st != running ]] && break
    sleep 0.01
  done
  t1=$(now_ns)
  [[ $st == completed ]] || { log "job $1 ended $st"; exit 1; }
  curl -sf -X DELETE "${auth[@]}" "http://$GW/v2/namespaces/$NS/scans/$id" >/dev/null
  echo $(((t1 - t0) / 1000000))
}
warm_ms() {
  local t0 t1 id st
  t0=$(now_ns)
  id=$(curl -sf -X POST -H "Authorization: Bearer $KEY" "http://$GW/v2/namespaces/$NS/warm?page_size=$PAGE" | jq -r .id)
  while :; do
    st=$(curl -sf "${auth[@]}" "http://$GW/v2/namespaces/$NS/warm-jobs/$id" | jq -r .status)
    [[ $st != running ]] && break
    sleep 0.01
  done
  t1=$(now_ns)
  [[ $st == completed ]] || { log "warm ended $st"; exit 1; }
  echo $(((t1 - t0) / 1000000))
}
# One snapshot job (facet histogram of `category`) to completion; prints elapsed ms.
snap_ms() { # SOURCE
  local t0 t1 id st
  t0=$(now_ns)
  id=$(curl -sf "${auth[@]}" -d "{\"field\":\"category\",\"source\":\"$1\",\"page_size\":$PAGE}" \
    "http://$GW/v2/namespaces/$NS/snapshots" | jq -r .id)
  while :; do
    st=$(curl -sf "${auth[@]}" "http://$GW/v2/namespaces/$NS/snapshot-jobs/$id" | jq -r .status)
    [[ $st != running ]] && break
    sleep 0.01
  done
  t1=$(now_ns)
  [[ $st == completed ]] || { log "snapshot job $1 ended $st"; exit 1; }
  echo $(((t1 - t0) / 1000000))
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # LABEL CMD...
  local label=$1 runs=() g0 e0 g1 e1
  shift
  g0=$(ticks "$GW_PID") e0=$(ticks "$EMU_PID")
  for _ in $(seq "$REPEAT"); do runs+=("$("$@")"); done
  g1=$(ticks "$GW_PID") e1=$(ticks "$EMU_PID")
  local ms gcpu ecpu
  ms=$(echo "${runs[*]}" | median)
  ((ms > 0)) || ms=1
  # CPU per run (user+sys, both processes), in ms: load on the machine does not inflate it.
  gcpu=$(((g1 - g0) * 1000 / CLK_TCK / REPEAT))
  ecpu=$(((e1 - e0) * 1000 / CLK_TCK / REPEAT))
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$ms" "$(((ROWS * 1000) / ms))" "$gcpu" "$ecpu" \
    "${runs[*]}" >>"$TMP/table.md"
  log "$label: median ${ms} ms over ${runs[*]}; cpu/run gateway ${gcpu} ms, emulator ${ecpu} ms"
}

FILTER='["category","In",["c1","c2","c3","c4","c5"]]'
EXPECT=$((ROWS / 4))
VALUES_CAT="{\"mode\":\"values\",\"field\":\"category\",\"page_size\":$PAGE"
VALUES_SKU="{\"mode\":\"values\",\"field\":\"sku\",\"page_size\":$PAGE"
IDS="{\"filters\":$FILTER,\"page_size\":$PAGE"
: >"$TMP/table.md"
measure "count, origin (Count aggregation)" count_ms origin "$FILTER" "$EXPECT"
measure "values category, origin" job_ms "$VALUES_CAT,\"source\":\"origin\"}"
measure "values sku (all distinct), origin" job_ms "$VALUES_SKU,\"source\":\"origin\"}"
measure "ids, origin" job_ms "$IDS,\"source\":\"origin\"}"
measure "snapshot job category, origin" snap_ms origin
measure "warm (origin → NVMe tier)" warm_ms
measure "count, cache" count_ms cache "$FILTER" "$EXPECT"
measure "values category, cache" job_ms "$VALUES_CAT,\"source\":\"cache\"}"
measure "values sku (all distinct), cache" job_ms "$VALUES_SKU,\"source\":\"cache\"}"
measure "ids, cache" job_ms "$IDS,\"source\":\"cache\"}"
measure "snapshot job category, cache" snap_ms cache

{
  echo "# Scan throughput — $(date +%F)"
  echo
  echo "$(nproc)-core $(lscpu | sed -n 's/^Model name: *//p' | head -1); release builds; one gateway shard on CPU $PROXY_CPU,"
  echo "the emulator on CPU $LOAD_CPU. $ROWS documents (~$(jq -c '.upsert_rows[0]' "$TMP/batch.json" | wc -c) bytes each: id, category (20 values),"
  echo "n, tags (2 strings), sku (unique), title), unsharded, stable (the scans read at the watermark cut)."
  echo "Page size $PAGE. Filter for counts and ids: \`$FILTER\` (matches $EXPECT). Median of $REPEAT runs."
  echo "rows/s = $ROWS documents / wall time (jobs: create until the first poll that sees \`completed\`, 10 ms polls)."
  echo
  echo "Load average when the run ended: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; wall times"
  echo "are noisier than the CPU columns, which count only the two processes' own user+sys time)."
  echo
  echo "| scan | median ms | rows/s | gateway CPU ms/run | emulator CPU ms/run | runs (ms) |"
  echo "|---|---:|---:|---:|---:|---|"
  cat "$TMP/table.md"
  echo
  echo "Generated by \`bench/scans.sh\` (ROWS=$ROWS PAGE=$PAGE REPEAT=$REPEAT)."
} >"$OUT"
log "wrote $OUT"
