#!/usr/bin/env bash
# bench/compare.sh [SCENARIO] — one scenario, three paths, one run, one machine:
#
#   direct   layer-loadgen → turbopuffer-emulator
#   gateway  layer-loadgen → layer-gateway (--shards 1) → turbopuffer-emulator
#   nginx    layer-loadgen → nginx (1 worker, upstream keepalive) → turbopuffer-emulator
#   baseline layer-loadgen → another layer-gateway build (--shards 1) → turbopuffer-emulator,
#            only with BASELINE_BIN=/path/to/layer-gateway (before/after a change, in one run);
#            BASELINE_ENV="VAR=VALUE ..." starts it with those settings (BASELINE_BIN defaults to
#            the same binary then: one setting against the default, in one run)
#
# The proxy runs alone on PROXY_CPU (default CPU0); the load generator and the emulator share
# LOAD_CPU (default CPU1). Rounds are interleaved (the order rotates every round), each run is a
# closed loop at fixed concurrency for a bounded duration after a warm-up, and every process
# listens on and is sent load on 127.0.0.1 only. Everything started here is killed by PID on exit.
#
# Writes bench/results/<YYYY-MM-DD>-<SCENARIO>.md. Knobs (environment): CONCURRENCY (64),
# DURATION (10s), WARMUP (2s), ROUNDS (3), ROWS (10000), DIMS (16, must match the scenario's
# vectors; also the length of `${vector}`, see query_vector in bench/lib.sh), BATCH (1000),
# PROXY_CPU (0), LOAD_CPU (1), BUSY_LIMIT (15 %), BUSY_WAIT (60 s), SKIP_BUILD (0), OUT (result
# path), KEEP_TMP (0), BASELINE_BIN (unset), UPDATING (0; 1 = the namespace holds unindexed
# writes throughout, so the gateway splices its stable-read predicate into every query). See
# bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# start_nginx (compare.sh keeps its own setup and cleanup; only that function is used).
source "$ROOT/bench/lib.sh"
SCENARIO=${1:-query-passthrough}
SCENARIO_FILE=$ROOT/bench/scenarios/$SCENARIO.yaml
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-10000}
UPDATING=${UPDATING:-0}
DIMS=${DIMS:-16}
BATCH=${BATCH:-1000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BUSY_LIMIT=${BUSY_LIMIT:-15}
BUSY_WAIT=${BUSY_WAIT:-60}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
BASELINE_ENV=${BASELINE_ENV:-}
BASELINE_BIN=${BASELINE_BIN:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}
BIN=$CARGO_TARGET_DIR/release
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-$SCENARIO.md}
KEY=bench-$RANDOM$RANDOM
NS=bench-$SCENARIO
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/layer-bench.XXXXXX")
NOTES=()

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 || $KEEP_TMP == 1 ]]; then
    log "logs kept in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -f $SCENARIO_FILE ]] || die "no scenario $SCENARIO_FILE"
((NCPU >= 2)) || log "warning: only $NCPU CPU; proxy and load will share it"
((PROXY_CPU < NCPU && LOAD_CPU < NCPU)) || die "PROXY_CPU/LOAD_CPU out of range (nproc=$NCPU)"

# ---------------------------------------------------------------- CPU accounting (no forks)
# proc_ticks PID...: REPLY = utime+stime of the processes (all threads), in clock ticks.
proc_ticks() {
  local total=0 line pid
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    read -r line <"/proc/$pid/stat" || continue
    line=${line##*) }
    # shellcheck disable=SC2086
    set -- $line
    total=$((total + ${12} + ${13}))
  done
  REPLY=$total
}
# children_ticks: REPLY = CPU of this shell's waited-for children (cutime+cstime).
children_ticks() {
  local line
  read -r line <"/proc/$$/stat"
  line=${line##*) }
  # shellcheck disable=SC2086
  set -- $line
  REPLY=$((${14} + ${15}))
}
# sys_ticks: BUSY and TOTAL jiffies of the whole machine (steal counts as not ours, not busy).
sys_ticks() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  BUSY=$((user + nice + system + irq + softirq))
  TOTAL=$((BUSY + idle + iowait + steal))
  STEAL=$steal
}
busy_pct() { # busy_pct SECONDS: REPLY = % of all CPUs busy over the interval
  local b0 t0
  sys_ticks
  b0=$BUSY t0=$TOTAL
  sleep "$1"
  sys_ticks
  REPLY=$(((BUSY - b0) * 100 / (TOTAL - t0 > 0 ? TOTAL - t0 : 1)))
}
nginx_pids() { # REPLY = master plus worker PIDs
  local kids
  kids=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true)
  REPLY="$NGINX_PID $kids"
}

# ---------------------------------------------------------------- build and tools
if [[ $SKIP_BUILD != 1 ]]; then
  log "building release binaries (turbopuffer-emulator, layer-gateway, layer-loadgen)"
  (cd "$ROOT" && cargo build --release -q -p turbopuffer-emulator -p layer-gateway -p layer-loadgen)
fi
for b in turbopuffer-emulator layer-gateway layer-loadgen; do
  [[ -x $BIN/$b ]] || die "missing $BIN/$b (run without SKIP_BUILD=1)"
done
if ! command -v nginx >/dev/null; then
  log "nginx not found; installing nginx-light with apt-get"
  apt-get update -qq >"$TMP/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq nginx-light >>"$TMP/apt.log" 2>&1 || die "apt-get failed: $TMP/apt.log"
fi
for t in taskset curl jq awk; do command -v "$t" >/dev/null || die "$t is required"; done
LOADGEN=$BIN/layer-loadgen
# The query vector of scenarios that take one (`${vector}`, query-ann-vector): DIMS numbers.
VECTOR=$(query_vector "$DIMS")

# wait_addr FILE PID NAME: REPLY = ADDR from the "NAME listening on http://ADDR" line.
wait_addr() {
  local file=$1 pid=$2 name=$3 line
  for _ in $(seq 1 300); do
    if line=$(grep -m1 -o "$name listening on http://[^ ]*" "$file" 2>/dev/null); then
      REPLY=${line##*http://}
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up: $(tail -5 "$file" "$TMP"/*.err 2>/dev/null)"
    sleep 0.1
  done
  die "$name did not report its address within 30 s"
}

# ---------------------------------------------------------------- emulator and seed data
taskset -c "$LOAD_CPU" "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" \
  --threads 1 >"$TMP/emulator.out" 2>"$TMP/emulator.err" &
EMU_PID=$!
PIDS+=("$EMU_PID")
wait_addr "$TMP/emulator.out" "$EMU_PID" turbopuffer-emulator
EMU_ADDR=$REPLY
[[ $EMU_ADDR == 127.0.0.1:* ]] || die "emulator is not on 127.0.0.1: $EMU_ADDR"
log "emulator on $EMU_ADDR (pid $EMU_PID, CPU$LOAD_CPU)"

log "seeding namespace $NS: $ROWS rows, $DIMS-dim vectors, batches of $BATCH"
for ((start = 0; start < ROWS; start += BATCH)); do
  awk -v start="$start" -v n="$BATCH" -v rows="$ROWS" -v dims="$DIMS" 'BEGIN {
    srand(42 + start); end = start + n; if (end > rows) end = rows
    printf "{\"upsert_rows\":["
    for (i = start; i < end; i++) {
      printf "%s{\"id\":%d,\"vector\":[", (i > start ? "," : ""), i
      for (d = 0; d < dims; d++) printf "%s%.4f", (d ? "," : ""), rand() * 2 - 1
      printf "]}"
    }
    printf "],\"distance_metric\":\"cosine_distance\"}"
  }' >"$TMP/seed.json"
  curl -sS --fail-with-body -o "$TMP/seed.resp" -X POST "http://$EMU_ADDR/v2/namespaces/$NS" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "@$TMP/seed.json" || die "seeding failed: $(cat "$TMP/seed.resp")"
done
rm -f "$TMP/seed.json"

# ---------------------------------------------------------------- gateway (and baseline)
# start_gateway BIN NAME: starts a gateway build on PROXY_CPU; sets GW_STARTED_PID and REPLY
# (its address).
start_gateway() {
  local bin=$1 name=$2 envs=()
  [[ $name == baseline ]] && read -ra envs <<<"$BASELINE_ENV"
  env "${envs[@]}" taskset -c "$PROXY_CPU" "$bin" --listen 127.0.0.1:0 \
    --upstream-url "http://$EMU_ADDR" --upstream-api-key "$KEY" --shards 1 \
    --data-dir "$TMP/$name-data" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  GW_STARTED_PID=$!
  PIDS+=("$GW_STARTED_PID")
  wait_addr "$TMP/$name.out" "$GW_STARTED_PID" layer-gateway
  [[ $REPLY == 127.0.0.1:* ]] || die "$name is not on 127.0.0.1: $REPLY"
  log "$name ($bin) on $REPLY (pid $GW_STARTED_PID, CPU$PROXY_CPU)"
}
start_gateway "$BIN/layer-gateway" gateway
GW_ADDR=$REPLY GW_PID=$GW_STARTED_PID

TARGETS=(direct gateway nginx)
BASE_ADDR="" BASE_PID=""
[[ -n $BASELINE_ENV && -z $BASELINE_BIN ]] && BASELINE_BIN=$BIN/layer-gateway
if [[ -n $BASELINE_BIN ]]; then
  [[ -x $BASELINE_BIN ]] || die "BASELINE_BIN is not an executable: $BASELINE_BIN"
  start_gateway "$BASELINE_BIN" baseline
  BASE_ADDR=$REPLY BASE_PID=$GW_STARTED_PID
  TARGETS+=(baseline)
fi

# ---------------------------------------------------------------- nginx
start_nginx "$PROXY_CPU" "$EMU_ADDR"
log "nginx on $NGINX_ADDR (pid $NGINX_PID, CPU$PROXY_CPU)"

# ---------------------------------------------------------------- smoke test: every path answers
for t in "${TARGETS[@]}"; do
  case $t in
  direct) addr=$EMU_ADDR ;;
  gateway) addr=$GW_ADDR ;;
  nginx) addr=$NGINX_ADDR ;;
  baseline) addr=$BASE_ADDR ;;
  esac
  "$LOADGEN" --scenario "$SCENARIO_FILE" --target "http://$addr" --var "ns=$NS" --var "vector=$VECTOR" \
    --var "api_key=$KEY" --concurrency 1 --warmup 0s --duration 300ms --format json \
    --out "$TMP/smoke-$t.json" 2>"$TMP/smoke-$t.err" ||
    die "smoke test through $t failed: $(cat "$TMP/smoke-$t.err") $(jq -c .status "$TMP/smoke-$t.json" 2>/dev/null)"
done
log "smoke test passed on every path (${TARGETS[*]})"
PREDICATE_SEEN=n/a
if [[ $UPDATING == 1 ]]; then
  # A namespace kept updating (bench/lib.sh says why each step is needed). The seed went straight
  # to the emulator, so every gateway build, the baseline too, stamps a row of its own first.
  GWS=("$GW_ADDR")
  [[ -z $BASE_ADDR ]] || GWS+=("$BASE_ADDR")
  next_id=$((ROWS + 1))
  for gw in "${GWS[@]}"; do
    updating_write "$gw" "$NS" "$next_id" "$DIMS" || die "the stamped write through $gw failed"
    next_id=$((next_id + 1))
    updating_watermark "$gw" "$NS" || die "gateway $gw never held a watermark"
  done
  updating_indexer "$EMU_ADDR" "$NS" true || die "pausing the indexer failed"
  for gw in "${GWS[@]}"; do
    updating_write "$gw" "$NS" "$next_id" "$DIMS" || die "the unindexed write through $gw failed"
    next_id=$((next_id + 1))
  done
  # The predicate must show in what the emulator receives from each build's scenario queries.
  send_scenario() {
    "$LOADGEN" --scenario "$SCENARIO_FILE" --target "http://$1" --var "ns=$NS" --var "vector=$VECTOR" \
      --var "api_key=$KEY" --concurrency 1 --warmup 0s --duration 100ms --format json \
      --out "$TMP/predicate.json" 2>/dev/null
  }
  for gw in "${GWS[@]}"; do
    updating_seen "$EMU_ADDR" send_scenario "$gw" || die "UPDATING=1 but the queries through $gw carry no stable-read predicate"
  done
  PREDICATE_SEEN=yes
  log "every gateway build splices the stable-read predicate (seen in the emulator's request log)"
fi

# ---------------------------------------------------------------- quiet machine?
waited=0
busy_pct 2
START_BUSY=$REPLY
while ((REPLY > BUSY_LIMIT && waited < BUSY_WAIT)); do
  log "machine ${REPLY}% busy (limit ${BUSY_LIMIT}%); waiting"
  sleep 3
  waited=$((waited + 5))
  busy_pct 2
done
PRE_BUSY=$REPLY
if ((PRE_BUSY > BUSY_LIMIT)); then
  NOTES+=("The machine was ${PRE_BUSY}% busy (all CPUs) just before measuring, after waiting ${waited} s (limit ${BUSY_LIMIT}%); other work was running. See the foreign CPU column: runs with high foreign CPU are contaminated.")
  log "machine still ${PRE_BUSY}% busy after ${waited} s; measuring anyway (noted in the results)"
fi
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- rounds
RAW=$TMP/raw.tsv
printf 'round\ttarget\treq_s\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tmax_ms\tproxy_us_req\tproxy_cpu_pct\temu_us_req\tloadgen_cpu_pct\tforeign_cpu_pct\tsteal_pct\terrors\tall_responses\n' >"$RAW"

run_one() { # run_one ROUND TARGET
  local round=$1 t=$2 addr proxy_pids="" out=$TMP/run-$1-$2.json
  case $t in
  direct) addr=$EMU_ADDR ;;
  gateway) addr=$GW_ADDR proxy_pids=$GW_PID ;;
  baseline) addr=$BASE_ADDR proxy_pids=$BASE_PID ;;
  nginx)
    addr=$NGINX_ADDR
    nginx_pids
    proxy_pids=$REPLY
    ;;
  esac
  local p0 e0 c0 b0 tot0 s0 p1 e1 c1 b1 tot1 s1 ns0 ns1 rc=0
  # shellcheck disable=SC2086
  proc_ticks $proxy_pids
  p0=$REPLY
  proc_ticks "$EMU_PID"
  e0=$REPLY
  children_ticks
  c0=$REPLY
  sys_ticks
  b0=$BUSY tot0=$TOTAL s0=$STEAL
  ns0=$(date +%s%N)
  taskset -c "$LOAD_CPU" "$LOADGEN" --scenario "$SCENARIO_FILE" --target "http://$addr" \
    --var "ns=$NS" --var "vector=$VECTOR" --var "api_key=$KEY" --concurrency "$CONCURRENCY" --warmup "$WARMUP" \
    --duration "$DURATION" --format json --out "$out" --allow-errors 2>"$TMP/run-$1-$2.err" || rc=$?
  ns1=$(date +%s%N)
  sys_ticks
  b1=$BUSY tot1=$TOTAL s1=$STEAL
  children_ticks
  c1=$REPLY
  proc_ticks "$EMU_PID"
  e1=$REPLY
  # shellcheck disable=SC2086
  proc_ticks $proxy_pids
  p1=$REPLY
  ((rc == 0)) || die "layer-loadgen failed against $t: $(cat "$TMP/run-$1-$2.err")"
  jq -r --arg round "$round" --arg t "$t" --argjson dp $((p1 - p0)) --argjson de $((e1 - e0)) \
    --argjson dc $((c1 - c0)) --argjson db $((b1 - b0)) --argjson dtot $((tot1 - tot0)) \
    --argjson ds $((s1 - s0)) --argjson wall_ns $((ns1 - ns0)) --argjson hz "$CLK_TCK" \
    --argjson ncpu "$NCPU" --arg has_proxy "${proxy_pids:+1}" '
    def r(n): (. * n | round) / n;
    ([.all_responses, 1] | max) as $n | ($wall_ns / 1e9) as $wall |
    [ $round, $t, (.throughput_rps | r(1)),
      (.latency_us.p50 / 1000 | r(1000)), (.latency_us.p90 / 1000 | r(1000)),
      (.latency_us.p99 / 1000 | r(1000)), (.latency_us.p99_9 / 1000 | r(1000)),
      (.latency_us.max / 1000 | r(1000)),
      (if $has_proxy == "1" then ($dp / $hz * 1e6 / $n | r(10)) else "-" end),
      (if $has_proxy == "1" then ($dp / $hz / $wall * 100 | r(10)) else "-" end),
      ($de / $hz * 1e6 / $n | r(10)),
      ($dc / $hz / $wall * 100 | r(10)),
      ((($db - $dp - $de - $dc) / $hz) / ($wall * $ncpu) * 100 | r(10)),
      ($ds / ([$dtot, 1] | max) * 100 | r(10)),
      (.errors.connect + .errors.io + .errors.timeout + .unexpected_status),
      $n ] | @tsv' "$out" >>"$RAW"
  log "round $round $t: $(tail -1 "$RAW" | cut -f3-8 | tr '\t' ' ') (req/s p50 p90 p99 p99.9 max ms)"
}

NT=${#TARGETS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  for ((k = 0; k < NT; k++)); do
    run_one "$round" "${TARGETS[$(((round - 1 + k) % NT))]}"
  done
done

# ---------------------------------------------------------------- report
# summarize TARGET COLUMN: REPLY = "median (min-max)"; MED = the median alone.
summarize() {
  local line
  line=$(awk -F'\t' -v t="$1" -v c="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) col = i; next }
    $2 == t && $col != "-" { v[n++] = $col + 0 }
    END {
      if (n == 0) { print "- -"; exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
      med = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
      if (n == 1) printf "%g %g\n", med, med
      else printf "%g %g (%g-%g)\n", med, med, v[0], v[n - 1]
    }' "$RAW")
  MED=${line%% *}
  REPLY=${line#* }
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%+.3f", a - b }'; }

declare -A M
table=""
for t in "${TARGETS[@]}"; do
  row="| $t"
  for c in req_s p50_ms p90_ms p99_ms p999_ms max_ms proxy_us_req proxy_cpu_pct emu_us_req loadgen_cpu_pct foreign_cpu_pct; do
    summarize "$t" "$c"
    M[$t.$c]=$MED
    row+=" | $REPLY"
  done
  errors=$(awk -F'\t' -v t="$t" 'NR > 1 && $2 == t { s += $15 } END { print s + 0 }' "$RAW")
  table+="$row | $errors |"$'\n'
done

# Per-round gateway/nginx CPU ratios and their median: less sensitive to load that changes
# between rounds than the ratio of medians.
PER_ROUND=$(awk -F'\t' 'NR > 1 && $9 != "-" { v[$1 "," $2] = $9; r[$1] = 1 }
  END {
    n = 0
    for (k in r) if (v[k ",nginx"] > 0) { x[n++] = v[k ",gateway"] / v[k ",nginx"]; lab[n - 1] = k }
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (lab[j] + 0 < lab[i] + 0) {
      t = x[i]; x[i] = x[j]; x[j] = t; t = lab[i]; lab[i] = lab[j]; lab[j] = t }
    out = ""
    for (i = 0; i < n; i++) { out = out (i ? ", " : "") sprintf("round %s %.2f", lab[i], x[i]); y[i] = x[i] }
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (y[j] < y[i]) { t = y[i]; y[i] = y[j]; y[j] = t }
    if (n) printf "%s (median %.2f)", out, (n % 2) ? y[int(n / 2)] : (y[n / 2 - 1] + y[n / 2]) / 2
    else printf "-"
  }' "$RAW")
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
AVX2=$(grep -qw avx2 /proc/cpuinfo && echo yes || echo no)
HYPERVISOR=$(grep -qw hypervisor /proc/cpuinfo && echo "yes (virtual machine)" || echo no)
RUSTC=$(cd "$ROOT" && rustc --version)
NGINX_V=$(nginx -v 2>&1 | sed 's/^nginx version: //')
GIT_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(cd "$ROOT" && [[ -n $(git status --porcelain 2>/dev/null) ]] && echo " (work tree has uncommitted changes)" || true)
total_errors=$(awk -F'\t' 'NR > 1 { s += $15 } END { print s + 0 }' "$RAW")
((total_errors == 0)) || NOTES+=("$total_errors measured requests failed or returned an unexpected status; see the errors column.")
max_foreign=$(awk -F'\t' 'NR > 1 && $13 > m { m = $13 } END { print m + 0 }' "$RAW")
if awk -v m="$max_foreign" 'BEGIN { exit !(m > 5) }'; then
  NOTES+=("Foreign CPU (work not from the emulator, proxy or load generator) reached ${max_foreign}% of the machine in at least one run, so some rounds shared the CPUs with other work; compare rounds in the raw table and prefer the CPU µs/request columns.")
fi
((${#NOTES[@]})) || NOTES+=("None: every run finished without errors and with little foreign CPU.")

mkdir -p "$(dirname "$OUT")"
{
  echo "# $SCENARIO: direct vs layer-gateway vs nginx"
  echo
  echo "Generated by \`CONCURRENCY=$CONCURRENCY WARMUP=$WARMUP DURATION=$DURATION ROUNDS=$ROUNDS ROWS=$ROWS DIMS=$DIMS${BASELINE_BIN:+ BASELINE_BIN=$BASELINE_BIN} bench/compare.sh $SCENARIO\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $GIT_REV$GIT_DIRTY."
  echo
  echo "## Machine"
  echo
  echo "- CPUs (nproc): $NCPU; model: $CPU_MODEL; AVX2: $AVX2; hypervisor: $HYPERVISOR"
  echo "- kernel: $(uname -sr)"
  echo "- rustc: $RUSTC"
  echo "- nginx: $NGINX_V"
  echo "- load before measuring: loadavg $LOADAVG; ${START_BUSY}% of all CPUs busy at first check, ${PRE_BUSY}% when measuring started (limit $BUSY_LIMIT%, waited ${waited} s)"
  echo
  echo "## Setup"
  echo
  echo "- Scenario \`bench/scenarios/$SCENARIO.yaml\`, namespace \`$NS\` seeded with $ROWS rows of $DIMS-dim vectors (cosine distance) through the emulator's HTTP API."
  [[ $UPDATING != 1 ]] || echo "- \`UPDATING=1\`: after one row written through each gateway build (the baseline too) and a watermark held by each, the emulator's indexer is paused for \`$NS\` and one more row written through each before the runs, so the namespace holds unindexed writes throughout and the gateway splices its stable-read predicate into every query (checked in the emulator's request log for each gateway build, the baseline included: $PREDICATE_SEEN)."
  echo "- \`turbopuffer-emulator --threads 1\` and \`layer-loadgen\` pinned to CPU$LOAD_CPU; the proxy (\`layer-gateway --shards 1\`, or nginx with one worker, \`proxy_pass\`, upstream \`keepalive 256\`, \`proxy_http_version 1.1\`, access log off) pinned to CPU$PROXY_CPU. In the direct runs CPU$PROXY_CPU is idle."
  [[ -z $BASELINE_BIN ]] || echo "- \`baseline\` is another layer-gateway build, \`$BASELINE_BIN\`, started exactly like \`gateway\`${BASELINE_ENV:+ but with \`$BASELINE_ENV\`} and measured in the same rounds."
  echo "- Closed loop, $CONCURRENCY keep-alive connections, $WARMUP warm-up then $DURATION measured, $ROUNDS interleaved rounds (order rotated each round). Everything on 127.0.0.1."
  echo "- Cells are the median over rounds, with (min-max). Latencies are in ms, measured by layer-loadgen per request (HDR histogram)."
  echo "- proxy CPU µs/req = proxy utime+stime (from /proc/PID/stat, all threads; nginx master plus worker) over the whole loadgen run, divided by every response in that run, warm-up included. emulator µs/req is the same for the emulator. loadgen CPU % is the load generator's CPU time over wall time, as a share of one CPU. foreign CPU % is machine busy time (from /proc/stat) not spent in these three processes, as a share of all $NCPU CPUs; the two counters are kept differently by the kernel, so it is approximate to a few percent and can read slightly negative. Steal is in the raw table."
  echo
  echo "## Results"
  echo
  echo "| path | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | proxy CPU µs/req | proxy CPU % | emulator CPU µs/req | loadgen CPU % | foreign CPU % | errors (all rounds) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "$table"
  echo
  echo "## Ratios (of medians)"
  echo
  echo "| | req/s | p50 | p99 | proxy CPU µs/req |"
  echo "|---|---:|---:|---:|---:|"
  echo "| gateway / nginx | $(ratio "${M[gateway.req_s]}" "${M[nginx.req_s]}") | $(ratio "${M[gateway.p50_ms]}" "${M[nginx.p50_ms]}") | $(ratio "${M[gateway.p99_ms]}" "${M[nginx.p99_ms]}") | $(ratio "${M[gateway.proxy_us_req]}" "${M[nginx.proxy_us_req]}") |"
  echo "| gateway / direct | $(ratio "${M[gateway.req_s]}" "${M[direct.req_s]}") | $(ratio "${M[gateway.p50_ms]}" "${M[direct.p50_ms]}") | $(ratio "${M[gateway.p99_ms]}" "${M[direct.p99_ms]}") | - |"
  echo "| nginx / direct | $(ratio "${M[nginx.req_s]}" "${M[direct.req_s]}") | $(ratio "${M[nginx.p50_ms]}" "${M[direct.p50_ms]}") | $(ratio "${M[nginx.p99_ms]}" "${M[direct.p99_ms]}") | - |"
  if [[ -n $BASELINE_BIN ]]; then
    echo "| baseline / nginx | $(ratio "${M[baseline.req_s]}" "${M[nginx.req_s]}") | $(ratio "${M[baseline.p50_ms]}" "${M[nginx.p50_ms]}") | $(ratio "${M[baseline.p99_ms]}" "${M[nginx.p99_ms]}") | $(ratio "${M[baseline.proxy_us_req]}" "${M[nginx.proxy_us_req]}") |"
    echo "| gateway / baseline | $(ratio "${M[gateway.req_s]}" "${M[baseline.req_s]}") | $(ratio "${M[gateway.p50_ms]}" "${M[baseline.p50_ms]}") | $(ratio "${M[gateway.p99_ms]}" "${M[baseline.p99_ms]}") | $(ratio "${M[gateway.proxy_us_req]}" "${M[baseline.proxy_us_req]}") |"
  fi
  echo
  echo "Per round (gateway and nginx measured minutes apart in the same round): gateway / nginx proxy CPU µs/req = $PER_ROUND."
  echo
  echo "Added p50 latency over direct: gateway $(diff_ms "${M[gateway.p50_ms]}" "${M[direct.p50_ms]}") ms, nginx $(diff_ms "${M[nginx.p50_ms]}" "${M[direct.p50_ms]}") ms (at $CONCURRENCY connections, so this includes queueing)."
  echo
  echo "## Notes"
  echo
  for n in "${NOTES[@]}"; do echo "- $n"; done
  echo
  echo "## Raw runs"
  echo
  echo '```'
  column -t -s $'\t' "$RAW" 2>/dev/null || cat "$RAW"
  echo '```'
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
