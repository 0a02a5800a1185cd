#!/usr/bin/env bash
# bench/soak.sh — a long run of mixed traffic through layer-gateway at a fraction of its peak,
# watching for leaks and drift:
#
#   1. peak   a closed loop (CONNECTIONS split evenly over the four request types, PEAK_DURATION)
#             of the mix below, with the job loop running: peak req/s per type and in total
#   2. soak   DURATION of open-loop traffic at RATE_FRACTION of each type's peak (so the mix is
#             the one measured at peak), as consecutive SEGMENT-long layer-loadgen runs (p99 per
#             segment), four loadgens in parallel:
#               point   POST /query, filters id Eq Zipf(1.0) id, top_k 1
#               ann     POST /query, 16-dim ANN top 10 (query-ann.yaml)
#               fetch   GET /documents/{id}, Zipf(1.0) ids (fetch-zipf.yaml)
#               write   POST /namespaces/{ns}, 16-row upsert, fixed ids (write-batch.yaml), so the
#                       namespace does not grow
#             plus a job loop that every JOB_INTERVAL seconds runs a count scan (checks the count),
#             an ids scan (polled to completion, results read and checked, then deleted) and a
#             warm job (polled to completion)
#   3. sample every SAMPLE_INTERVAL seconds (at 5, 15, 25 ... s, away from segment boundaries):
#             gateway VmRSS and thread count (/proc/PID/status), open fds (/proc/PID/fd),
#             established TCP connections from the gateway to the emulator's port and from the
#             load generators to the gateway (the gateway's socket inodes matched in
#             /proc/net/tcp{,6}), gateway and emulator CPU % and machine busy % (/proc/stat)
#   4. report bench/results/<YYYY-MM-DD>-soak.md with a verdict against the targets: zero errors,
#             RSS within ±RSS_TOLERANCE % of its value at the end of SOAK_WARMUP, no growth in fds
#             or upstream connections, p99 steady (rules spelled out in the report)
#
# CPU layout (2-core machine): nothing is pinned with taskset. The gateway runs its default one
# shard per core, and pins shard i to core i itself; the emulator (EMU_THREADS workers), the
# load generators (one thread each) and the job loop's curl float over both cores.
#
# Knobs (environment): DURATION (10m; 600, 600s, 10m, 1h), RATE_FRACTION (0.5), CONNECTIONS (64,
# peak closed loop, split evenly over the 4 types), PEAK_DURATION (15s), PEAK_WARMUP (2s),
# SOAK_CONNECTIONS (32 per open-loop loadgen), SEGMENT (60s), SAMPLE_INTERVAL (10, seconds),
# SOAK_WARMUP (2m, excluded from the flatness checks), RSS_TOLERANCE (5, %), JOB_INTERVAL (5, s),
# JOB_TIMEOUT (60, s), ROWS (20000), EMU_THREADS (2), SKIP_BUILD (0), OUT (result path),
# KEEP_TMP (0; 1 keeps the logs and raw JSON). Everything listens on 127.0.0.1, every phase is
# bounded, and everything started here is killed by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10m}
RATE_FRACTION=${RATE_FRACTION:-0.5}
CONNECTIONS=${CONNECTIONS:-64}
PEAK_DURATION=${PEAK_DURATION:-15s}
PEAK_WARMUP=${PEAK_WARMUP:-2s}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-32}
SEGMENT=${SEGMENT:-60s}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-10}
SOAK_WARMUP=${SOAK_WARMUP:-2m}
RSS_TOLERANCE=${RSS_TOLERANCE:-5}
JOB_INTERVAL=${JOB_INTERVAL:-5}
JOB_TIMEOUT=${JOB_TIMEOUT:-60}
ROWS=${ROWS:-20000}
EMU_THREADS=${EMU_THREADS:-2}
KEEP_TMP=${KEEP_TMP:-0}
DIMS=16 # the vectors in query-ann.yaml and write-batch.yaml are 16-dimensional
BATCH=1000
NS=bench-soak
TYPES=(point ann fetch write)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_setup soak
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-soak.md}
NCPU=$(nproc)
ALL_CPUS=0-$((NCPU - 1))
LOADGEN=$BIN/layer-loadgen
LG_PIDS=()

die() {
  log "error: $*"
  exit 1
}

soak_cleanup() {
  local rc=$? p keep
  ((rc == 0)) || log "exiting with status $rc (line ${BASH_LINENO[0]})"
  for p in "${LG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if [[ $KEEP_TMP == 1 || $rc -ne 0 ]]; then
    keep=$TMP-kept
    mkdir -p "$keep"
    cp "$TMP"/*.out "$TMP"/*.err "$TMP"/*.json "$TMP"/*.tsv "$TMP"/*.yaml "$TMP"/*.txt "$keep"/ 2>/dev/null || true
    log "logs and raw data kept in $keep"
  fi
  bench_cleanup
  exit "$rc"
}
trap soak_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# secs D: REPLY = D in whole seconds (600, 600s, 10m, 1h).
secs() {
  case $1 in
  *h) REPLY=$((${1%h} * 3600)) ;;
  *m) REPLY=$((${1%m} * 60)) ;;
  *s) REPLY=${1%s} ;;
  *) REPLY=$1 ;;
  esac
  if [[ ! $REPLY =~ ^[0-9]+$ ]] || ((REPLY == 0)); then die "not a duration in whole s/m/h: $1"; fi
}
secs "$DURATION"
DUR_S=$REPLY
secs "$SEGMENT"
SEG_S=$REPLY
secs "$SOAK_WARMUP"
WARM_S=$REPLY
secs "$PEAK_DURATION"
secs "$PEAK_WARMUP"
((DUR_S <= 6 * 3600)) || die "DURATION is at most 6h"
((WARM_S < DUR_S)) || die "SOAK_WARMUP ($SOAK_WARMUP) must be shorter than DURATION ($DURATION)"
((CONNECTIONS >= ${#TYPES[@]})) || die "CONNECTIONS must be at least ${#TYPES[@]}"
awk -v f="$RATE_FRACTION" 'BEGIN { exit !(f > 0 && f <= 1) }' || die "RATE_FRACTION must be in (0, 1]"

# now_ms: REPLY = wall clock in ms (no fork).
now_ms() {
  local t=${EPOCHREALTIME/./}
  REPLY=$((t / 1000))
}
sleep_ms() { if (($1 > 0)); then sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; fi; }

# ---------------------------------------------------------------- build, start, seed
bench_build turbopuffer-emulator layer-gateway layer-loadgen
for b in turbopuffer-emulator layer-gateway layer-loadgen; do
  [[ -x $BIN/$b ]] || die "missing $BIN/$b (run without SKIP_BUILD=1)"
done
for t in curl jq awk taskset find; do command -v "$t" >/dev/null || die "$t is required"; done
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

start emulator "$ALL_CPUS" -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" \
  --threads "$EMU_THREADS"
EMU=$REPLY EMU_PID=${PIDS[-1]}
[[ $EMU == 127.0.0.1:* ]] || die "emulator is not on 127.0.0.1: $EMU"
# The gateway at its defaults (shards = cores, cache tier on, default log level), apart from the
# listen address, the upstream and its own data directory.
start gateway "$ALL_CPUS" -- "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" \
  --upstream-api-key "$KEY" --data-dir "$TMP/gateway-data"
GW=$REPLY GW_PID=${PIDS[-1]}
[[ $GW == 127.0.0.1:* ]] || die "gateway is not on 127.0.0.1: $GW"
log "emulator on $EMU (pid $EMU_PID), gateway on $GW (pid $GW_PID)"
SHARDS=$(curl -sf "http://$GW/health" | jq -r '.shards // "?"' || echo "?")

auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
log "seeding $NS through the gateway: $ROWS rows, $DIMS-dim vectors, category (20 values), n"
for ((s = 0; s < ROWS; s += BATCH)); do
  awk -v start="$s" -v n="$BATCH" -v rows="$ROWS" -v dims="$DIMS" 'BEGIN {
    srand(42 + start); end = start + n; if (end > rows) end = rows
    printf "{\"upsert_rows\":["
    for (i = start; i < end; i++) {
      printf "%s{\"id\":%d,\"category\":\"c%d\",\"n\":%d,\"vector\":[", (i > start ? "," : ""), i, i % 20, i % 1000
      for (d = 0; d < dims; d++) printf "%s%.4f", (d ? "," : ""), rand() * 2 - 1
      printf "]}"
    }
    printf "],\"distance_metric\":\"cosine_distance\"}"
  }' >"$TMP/seed.json"
  curl -sS --fail-with-body -o "$TMP/seed.resp" "${auth[@]}" --data-binary "@$TMP/seed.json" \
    "http://$GW/v2/namespaces/$NS" || die "seeding failed: $(cat "$TMP/seed.resp")"
done
rm -f "$TMP/seed.json"
for _ in $(seq 600); do
  curl -sf "${auth[@]}" "http://$GW/v2/namespaces/$NS/metadata" | jq -e '.layer.is_stable' >/dev/null && break
  sleep 0.1
done

# Category c3 holds the ids i < ROWS with i % 20 == 3; the writes (ids 1000000-1000015) have none.
EXPECT=$(((ROWS - 4) / 20 + 1))
SCAN_FILTER='["category","Eq","c3"]'

# ---------------------------------------------------------------- scenarios
# point: query-passthrough.yaml with a Zipf id instead of the fixed 4242; fetch: fetch-zipf.yaml
# over ROWS ids instead of 10000. ann and write are used as they are.
# shellcheck disable=SC2016 # ${zipf} is the scenario's placeholder, not a shell expansion
sed -e 's/\["id","Eq",4242\]/["id","Eq",${zipf}]/' "$ROOT/bench/scenarios/query-passthrough.yaml" >"$TMP/point.yaml"
printf 'zipf: { n: %d, exponent: 1.0, offset: 0 }\n' "$ROWS" >>"$TMP/point.yaml"
sed -e "s/^zipf: { n: [0-9]*,/zipf: { n: $ROWS,/" "$ROOT/bench/scenarios/fetch-zipf.yaml" >"$TMP/fetch.yaml"
# shellcheck disable=SC2016
if ! grep -q '${zipf}' "$TMP/point.yaml" || ! grep -q "n: $ROWS," "$TMP/fetch.yaml"; then
  die "could not derive the point/fetch scenarios from query-passthrough.yaml and fetch-zipf.yaml"
fi
declare -A SCEN=([point]=$TMP/point.yaml [ann]=$ROOT/bench/scenarios/query-ann.yaml
  [fetch]=$TMP/fetch.yaml [write]=$ROOT/bench/scenarios/write-batch.yaml)
for t in "${TYPES[@]}"; do
  "$LOADGEN" --scenario "${SCEN[$t]}" --target "http://$GW" --var "ns=$NS" --var "api_key=$KEY" \
    --concurrency 1 --warmup 0s --duration 300ms --format json --out "$TMP/smoke-$t.json" 2>"$TMP/smoke-$t.err" ||
    die "smoke test $t failed: $(cat "$TMP/smoke-$t.err") $(jq -c .status "$TMP/smoke-$t.json" 2>/dev/null)"
done
log "smoke test passed for ${TYPES[*]}"

# ---------------------------------------------------------------- the job loop
# http METHOD PATH [BODY]: CODE = HTTP status (000 when curl failed), body in $JB.
JB=$TMP/job.body
http() {
  local args=(-sS -o "$JB" -w '%{http_code}' --max-time 30 -X "$1" "${auth[@]}")
  [[ -n ${3:-} ]] && args+=(--data-binary "$3")
  CODE=$(curl "${args[@]}" "http://$GW/v2/namespaces/$NS$2" 2>>"$TMP/jobs-curl.err") || CODE=${CODE:-000}
}
# poll PATH: polls a job every 100 ms until it is no longer running (at most JOB_TIMEOUT s);
# STATUS = its final status, or http-CODE / timeout.
poll() {
  local t_end
  now_ms
  t_end=$((REPLY + JOB_TIMEOUT * 1000))
  while :; do
    http GET "$1"
    if [[ $CODE != 200 ]]; then
      STATUS=http-$CODE
      return
    fi
    STATUS=$(jq -r '.status // "?"' "$JB" 2>/dev/null || echo unparseable)
    [[ $STATUS == running || $STATUS == pending || $STATUS == queued ]] || return 0
    now_ms
    ((REPLY < t_end)) || {
      STATUS=timeout
      return
    }
    sleep 0.1
  done
}
# jobs_loop PHASE END_MS T0_MS: count scan, ids scan, warm, every JOB_INTERVAL s until END_MS.
# Appends "phase t_s kind http status ms ok detail" lines to $TMP/jobs.tsv.
jobs_loop() {
  local phase=$1 end=$2 t0=$3 next t1 id detail ok n got sb
  set +e # a malformed answer is recorded as a failed job, it must not end the loop
  while :; do
    now_ms
    ((REPLY < end)) || break
    next=$((REPLY + JOB_INTERVAL * 1000))
    # count scan
    t1=$REPLY
    http POST /scans "{\"mode\":\"count\",\"filters\":$SCAN_FILTER}"
    now_ms
    n=$(jq -r '.count // "none"' "$JB" 2>/dev/null || echo none)
    ok=$([[ $CODE == 200 && $n == "$EXPECT" ]] && echo 1 || echo 0)
    detail="count=$n served_by=$(jq -r '.served_by // "?"' "$JB" 2>/dev/null || echo '?')"
    [[ $n == "$EXPECT" ]] || detail+=" answer=$(head -c 300 "$JB" | tr '\t\n' '  ')"
    printf '%s\t%d\tcount\t%s\t-\t%d\t%d\t%s\n' "$phase" $(((t1 - t0) / 1000)) "$CODE" $((REPLY - t1)) "$ok" "$detail" >>"$TMP/jobs.tsv"
    # ids scan: create, poll, read the results, delete
    now_ms
    t1=$REPLY
    http POST /scans "{\"mode\":\"ids\",\"filters\":$SCAN_FILTER}"
    STATUS=- detail="" ok=0
    if [[ $CODE == 202 ]]; then
      id=$(jq -r '.id // "none"' "$JB" 2>/dev/null)
      detail="source=$(jq -r '.effective_source // "?"' "$JB" 2>/dev/null)"
      poll "/scans/$id"
      if [[ $STATUS == completed ]]; then
        n=$(jq -r '.total // "none"' "$JB" 2>/dev/null)
        sb=$(head -c 400 "$JB" | tr '\t\n' '  ')
        http GET "/scans/$id/results"
        got=$(jq -r '.ids | length' "$JB" 2>/dev/null || echo none)
        detail+=" total=$n results=$got"
        if [[ $CODE == 200 && $n == "$EXPECT" && $got == "$EXPECT" ]]; then ok=1; else detail+=" job=$sb"; fi
        http DELETE "/scans/$id"
        [[ $CODE == 200 ]] || {
          ok=0
          detail+=" delete=$CODE"
        }
      else
        detail+=" $(jq -c '.error // empty' "$JB" 2>/dev/null | head -c 200 || true)"
      fi
    else
      detail=$(head -c 200 "$JB" | tr '\t\n' '  ')
    fi
    now_ms
    printf '%s\t%d\tids\t%s\t%s\t%d\t%d\t%s\n' "$phase" $(((t1 - t0) / 1000)) "$CODE" "$STATUS" $((REPLY - t1)) "$ok" "$detail" >>"$TMP/jobs.tsv"
    # warm job: create (or join the running one), poll
    now_ms
    t1=$REPLY
    http POST /warm
    STATUS=- ok=0
    if [[ $CODE == 202 || $CODE == 200 ]]; then
      id=$(jq -r '.id // "none"' "$JB" 2>/dev/null)
      poll "/warm-jobs/$id"
      detail="docs=$(jq -r '.documents_scanned // "?"' "$JB" 2>/dev/null || echo '?')"
      [[ $STATUS == completed ]] && ok=1
    else
      detail=$(head -c 200 "$JB" | tr '\t\n' '  ')
    fi
    now_ms
    printf '%s\t%d\twarm\t%s\t%s\t%d\t%d\t%s\n' "$phase" $(((t1 - t0) / 1000)) "$CODE" "$STATUS" $((REPLY - t1)) "$ok" "$detail" >>"$TMP/jobs.tsv"
    now_ms
    sleep_ms $((next - REPLY))
  done
}
: >"$TMP/jobs.tsv"

# A first warm, so the scans' auto source has a populated cache to choose from.
now_ms
t_warm=$REPLY
http POST /warm
[[ $CODE == 202 || $CODE == 200 ]] || die "warm: $CODE $(cat "$JB")"
poll "/warm-jobs/$(jq -r .id "$JB")"
[[ $STATUS == completed ]] || die "the initial warm ended $STATUS"
now_ms
INITIAL_WARM_MS=$((REPLY - t_warm))
log "initial warm completed in $INITIAL_WARM_MS ms"

# ---------------------------------------------------------------- CPU accounting
ticks_of() { # PID: REPLY = utime+stime in ticks (0 when gone)
  local line
  REPLY=0
  [[ -r /proc/$1/stat ]] || return 0
  read -r line <"/proc/$1/stat" || return 0
  line=${line##*) }
  # shellcheck disable=SC2086
  set -- $line
  REPLY=$((${12} + ${13}))
}
sys_ticks() { # BUSY and TOTAL jiffies of the machine
  local _ user nice system idle iowait irq softirq steal
  read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
  BUSY=$((user + nice + system + irq + softirq))
  TOTAL=$((BUSY + idle + iowait + steal))
  IOWAIT=$iowait
}

# ---------------------------------------------------------------- 1. peak
PER_CONN=$((CONNECTIONS / ${#TYPES[@]}))
log "peak: closed loop, $PER_CONN connections per type (${TYPES[*]}), $PEAK_WARMUP + $PEAK_DURATION, job loop running"
ticks_of "$GW_PID"
g0=$REPLY
ticks_of "$EMU_PID"
e0=$REPLY
sys_ticks
b0=$BUSY tt0=$TOTAL
now_ms
peak_t0=$REPLY
LG_PIDS=()
k=0
for t in "${TYPES[@]}"; do
  "$LOADGEN" --scenario "${SCEN[$t]}" --target "http://$GW" --var "ns=$NS" --var "api_key=$KEY" \
    --concurrency "$PER_CONN" --warmup "$PEAK_WARMUP" --duration "$PEAK_DURATION" --seed $((k + 1)) \
    --format json --out "$TMP/peak-$t.json" --allow-errors 2>"$TMP/peak-$t.err" &
  LG_PIDS+=($!)
  k=$((k + 1))
done
secs "$PEAK_WARMUP"
pw=$REPLY
secs "$PEAK_DURATION"
jobs_loop peak $((peak_t0 + (pw + REPLY) * 1000)) "$peak_t0" &
JOBS_PID=$!
PIDS+=("$JOBS_PID")
for p in "${LG_PIDS[@]}"; do wait "$p" || die "layer-loadgen failed in the peak run: $(cat "$TMP"/peak-*.err)"; done
LG_PIDS=()
now_ms
peak_wall=$((REPLY - peak_t0))
ticks_of "$GW_PID"
g1=$REPLY
ticks_of "$EMU_PID"
e1=$REPLY
sys_ticks
wait "$JOBS_PID" || true
PEAK_CPU=$(awk -v g=$((g1 - g0)) -v e=$((e1 - e0)) -v b=$((BUSY - b0)) -v t=$((TOTAL - tt0)) \
  -v hz="$CLK_TCK" -v w="$peak_wall" -v n="$NCPU" 'BEGIN {
  printf "gateway %.0f %% of one core, emulator %.0f %% of one core, machine %.0f %% busy (all %d cores)",
    g / hz / (w / 1000) * 100, e / hz / (w / 1000) * 100, b / (t > 0 ? t : 1) * 100, n }')
: >"$TMP/peak.tsv"
declare -A RATE
for t in "${TYPES[@]}"; do
  jq -r --arg t "$t" --arg c "$PER_CONN" '[$t, $c, (.throughput_rps * 10 | round / 10),
      (.latency_us.p50 / 1000), (.latency_us.p99 / 1000),
      (.errors.connect + .errors.io + .errors.timeout), .unexpected_status,
      (.status | to_entries | map("\(.key)=\(.value)") | join(" "))] | @tsv' "$TMP/peak-$t.json" >>"$TMP/peak.tsv"
  RATE[$t]=$(jq -r --argjson f "$RATE_FRACTION" '[.throughput_rps * $f * 10 | round / 10, 1] | max' "$TMP/peak-$t.json")
done
PEAK_TOTAL=$(awk -F'\t' '{ s += $3 } END { printf "%.1f", s }' "$TMP/peak.tsv")
SOAK_TOTAL=$(for t in "${TYPES[@]}"; do echo "${RATE[$t]}"; done | awk '{ s += $1 } END { printf "%.1f", s }')
log "peak: $PEAK_TOTAL req/s in total ($(awk -F'\t' '{ printf "%s %s  ", $1, $3 }' "$TMP/peak.tsv")); $PEAK_CPU"
log "soak rates (x $RATE_FRACTION): $(for t in "${TYPES[@]}"; do printf '%s %s  ' "$t" "${RATE[$t]}"; done)= $SOAK_TOTAL req/s"

# ---------------------------------------------------------------- 3. the sampler
EMU_PORT=${EMU##*:}
GW_PORT=${GW##*:}
# sock_counts: REPLY = "UPSTREAM CLIENTS", established TCP connections of the gateway process to
# the emulator's port, and to the gateway's port from its clients.
sock_counts() {
  {
    echo x
    find "/proc/$GW_PID/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n'
  } >"$TMP/inodes"
  REPLY=$(awk -v ep="$(printf '%04X' "$EMU_PORT")" -v gp="$(printf '%04X' "$GW_PORT")" '
    FILENAME ~ /inodes$/ { s[$1] = 1; next }
    FNR > 1 && $4 == "01" && ($10 in s) {
      split($2, l, ":"); split($3, r, ":")
      if (r[2] == ep) up++; else if (l[2] == gp) cl++
    }
    END { print up + 0, cl + 0 }' "$TMP/inodes" /proc/net/tcp /proc/net/tcp6 2>/dev/null)
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# sample LABEL: one line of samples.tsv (CPU % over the interval since the previous sample).
SG=0 SE=0 SB=0 ST=0 SW=0 SI=0
sample() {
  local fds rss thr emu_rss g e w disk
  local f=("/proc/$GW_PID/fd/"*)
  fds=${#f[@]}
  rss=$(status_kb "$GW_PID" VmRSS)
  thr=$(status_kb "$GW_PID" Threads)
  emu_rss=$(status_kb "$EMU_PID" VmRSS)
  disk=$(du -sk "$TMP/gateway-data" 2>/dev/null | cut -f1)
  sock_counts
  local up=${REPLY% *} cl=${REPLY#* }
  ticks_of "$GW_PID"
  g=$REPLY
  ticks_of "$EMU_PID"
  e=$REPLY
  sys_ticks
  now_ms
  w=$REPLY
  if ((SW > 0)); then
    awk -v l="$1" -v rss="$rss" -v fds="$fds" -v up="$up" -v cl="$cl" -v thr="$thr" -v er="$emu_rss" \
      -v g=$((g - SG)) -v e=$((e - SE)) -v b=$((BUSY - SB)) -v t=$((TOTAL - ST)) -v w=$((w - SW)) \
      -v io=$((IOWAIT - SI)) -v disk="${disk:-0}" -v hz="$CLK_TCK" 'BEGIN {
      s = w / 1000; if (s <= 0) s = 1; if (t <= 0) t = 1
      printf "%s\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%d\t%.0f\t%d\n", l, rss, fds, up, cl, thr,
        g / hz / s * 100, e / hz / s * 100, b / t * 100, er, io / t * 100, disk }' >>"$TMP/samples.tsv"
  fi
  SG=$g SE=$e SB=$BUSY ST=$TOTAL SW=$w SI=$IOWAIT
}
sampler() { # T0_MS: samples at T0 + 5 s + k * SAMPLE_INTERVAL while inside the soak
  local t0=$1 k=0 at
  set +e
  sample prime
  while :; do
    at=$((t0 + 5000 + k * SAMPLE_INTERVAL * 1000))
    ((at < t0 + DUR_S * 1000)) || break
    now_ms
    sleep_ms $((at - REPLY))
    sample $(((at - t0) / 1000))
    k=$((k + 1))
  done
}

# ---------------------------------------------------------------- 2. soak
printf 't_s\trss_kb\tfds\tupstream\tclients\tthreads\tgw_cpu\temu_cpu\tbusy\temu_rss_kb\tiowait\tdata_kb\n' >"$TMP/samples.tsv"
sample prime
sleep 5
sample before
SG=0 SE=0 SB=0 ST=0 SW=0 SI=0
NSEG=$(((DUR_S + SEG_S - 1) / SEG_S))
log "soak: $DURATION at $SOAK_TOTAL req/s (open loop, $SOAK_CONNECTIONS connections per loadgen), $NSEG segments of ${SEG_S}s, samples every ${SAMPLE_INTERVAL}s"
now_ms
SOAK_T0=$REPLY
SOAK_START_UTC=$(date -u '+%F %H:%M:%S')
sampler "$SOAK_T0" &
SAMPLER_PID=$!
PIDS+=("$SAMPLER_PID")
jobs_loop soak $((SOAK_T0 + DUR_S * 1000)) "$SOAK_T0" &
JOBS_PID=$!
PIDS+=("$JOBS_PID")
# Segments start on a fixed grid (SOAK_T0 + i * SEG_S), whether or not the previous segment's
# loadgens are still draining their last responses: the offered load is the schedule, with no
# gap and no drift between segments.
: >"$TMP/segments.tsv"
segment_done() { # I PIDS...: waits for segment I's loadgens and appends its rows
  local i=$1 p t
  shift
  for p in "$@"; do wait "$p" || die "layer-loadgen failed in segment $i: $(cat "$TMP"/soak-"$i"-*.err)"; done
  for t in "${TYPES[@]}"; do
    jq -r --arg i "$i" --arg s $((i * SEG_S)) --arg t "$t" --arg r "${RATE[$t]}" '[$i, $s, $t, $r,
        (.throughput_rps * 10 | round / 10), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000),
        (.latency_us.p99_9 / 1000), (.latency_us.max / 1000),
        (.errors.connect + .errors.io + .errors.timeout), .unexpected_status, .requests,
        (.scheduled // 0), ((.send_lag_us.p99 // 0) / 1000),
        (.status | to_entries | map("\(.key)=\(.value)") | join(" "))] | @tsv' \
      "$TMP/soak-$i-$t.json" >>"$TMP/segments.tsv"
  done
  log "segment $((i + 1))/$NSEG: $(awk -F'\t' -v i="$i" '$1 == i { printf "%s p99 %.2f ms (err %d)  ", $3, $7, $10 + $11 }' "$TMP/segments.tsv")"
}
PREV_PIDS=()
for ((i = 0; i < NSEG; i++)); do
  seg=$((i < NSEG - 1 ? SEG_S : DUR_S - i * SEG_S))
  now_ms
  sleep_ms $((SOAK_T0 + i * SEG_S * 1000 - REPLY))
  CUR_PIDS=()
  k=0
  for t in "${TYPES[@]}"; do
    "$LOADGEN" --scenario "${SCEN[$t]}" --target "http://$GW" --var "ns=$NS" --var "api_key=$KEY" \
      --rate "${RATE[$t]}" --connections "$SOAK_CONNECTIONS" --warmup 0s --duration "${seg}s" \
      --seed $((100 * (i + 1) + k)) --format json --out "$TMP/soak-$i-$t.json" --allow-errors \
      2>"$TMP/soak-$i-$t.err" &
    CUR_PIDS+=($!)
    k=$((k + 1))
  done
  LG_PIDS=("${PREV_PIDS[@]}" "${CUR_PIDS[@]}")
  ((i == 0)) || segment_done $((i - 1)) "${PREV_PIDS[@]}"
  PREV_PIDS=("${CUR_PIDS[@]}")
  LG_PIDS=("${CUR_PIDS[@]}")
done
segment_done $((NSEG - 1)) "${PREV_PIDS[@]}"
LG_PIDS=()
now_ms
SOAK_WALL_S=$(((REPLY - SOAK_T0) / 1000))
wait "$SAMPLER_PID" || true
wait "$JOBS_PID" || true
curl -sf "http://$GW/metrics" >"$TMP/metrics.txt" || true
GW_ALIVE=$(kill -0 "$GW_PID" 2>/dev/null && echo yes || echo "NO (the gateway exited)")
log "soak finished after ${SOAK_WALL_S}s; gateway alive: $GW_ALIVE"

# ---------------------------------------------------------------- 4. report
SPARK_CHARS=(▁ ▂ ▃ ▄ ▅ ▆ ▇ █)
# spark COLUMN [from_t]: REPLY = sparkline of a samples.tsv column (numeric rows only), scaled
# between the series' min and max.
spark() {
  local line idx
  line=$(awk -F'\t' -v c="$1" -v from="${2:-0}" 'NR > 1 && $1 ~ /^[0-9]+$/ && $1 + 0 >= from { v[n++] = $c }
    END {
      if (!n) exit
      lo = hi = v[0]; for (i = 1; i < n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
      for (i = 0; i < n; i++) printf "%d ", (hi > lo ? int((v[i] - lo) / (hi - lo) * 7 + 0.5) : 3)
    }' "$TMP/samples.tsv")
  REPLY=""
  for idx in $line; do REPLY+=${SPARK_CHARS[$idx]}; done
}
# stats COLUMN FROM_T: REPLY = "first last min max mean_first_third mean_last_third n" over samples at t >= FROM_T
stats() {
  REPLY=$(awk -F'\t' -v c="$1" -v from="$2" 'NR > 1 && $1 ~ /^[0-9]+$/ && $1 + 0 >= from { v[n++] = $c + 0 }
    END {
      if (!n) { print "0 0 0 0 0 0 0"; exit }
      lo = hi = v[0]; for (i = 1; i < n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
      k = int(n / 3); if (k < 1) k = 1
      for (i = 0; i < k; i++) { a += v[i]; z += v[n - 1 - i] }
      printf "%s %s %s %s %.2f %.2f %d\n", v[0], v[n - 1], lo, hi, a / k, z / k, n }' "$TMP/samples.tsv")
}
# First sample at or after the warm-up: the RSS reference.
REF_T=$(awk -F'\t' -v w="$WARM_S" 'NR > 1 && $1 ~ /^[0-9]+$/ && $1 + 0 >= w { print $1; exit }' "$TMP/samples.tsv")
[[ -n $REF_T ]] || die "no sample after the warm-up (DURATION too short for SOAK_WARMUP)"
stats 2 "$REF_T"
read -r RSS_START RSS_END RSS_MIN RSS_MAX _ _ NPOST <<<"$REPLY"
RSS_DEV=$(awk -v s="$RSS_START" -v lo="$RSS_MIN" -v hi="$RSS_MAX" 'BEGIN { printf "%+.1f %% / %+.1f %%", (lo - s) / s * 100, (hi - s) / s * 100 }')
RSS_OK=$(awk -v s="$RSS_START" -v lo="$RSS_MIN" -v hi="$RSS_MAX" -v tol="$RSS_TOLERANCE" 'BEGIN { print ((hi - s) / s * 100 <= tol && (s - lo) / s * 100 <= tol) ? "yes" : "no" }')
RSS_SLOPE=$(awk -F'\t' -v from="$REF_T" 'NR > 1 && $1 ~ /^[0-9]+$/ && $1 + 0 >= from { x = $1 / 60; y = $2 / 1024; n++; sx += x; sy += y; sxx += x * x; sxy += x * y }
  END { d = n * sxx - sx * sx; printf "%+.3f", (n > 1 && d != 0) ? (n * sxy - sx * sy) / d : 0 }' "$TMP/samples.tsv")
stats 2 0
read -r _ _ RSS_MIN_ALL RSS_MAX_ALL _ _ _ <<<"$REPLY"
# growth COLUMN: REPLY = "yes"/"no" (mean of the last third of the post-warm-up samples above the
# first third's by more than max(2, 5 %)), GROWTH_DESC = the numbers.
growth() {
  stats "$1" "$REF_T"
  local first last lo hi a z n
  read -r first last lo hi a z n <<<"$REPLY"
  REPLY=$(awk -v a="$a" -v z="$z" 'BEGIN { d = z - a; t = a * 0.05; if (t < 2) t = 2; print (d > t) ? "yes" : "no" }')
  GROWTH_DESC="$lo-$hi after warm-up (first $first, last $last; mean of the first third $a, of the last third $z)"
}
growth 3
FD_GROWTH=$REPLY FD_DESC=$GROWTH_DESC
growth 4
UP_GROWTH=$REPLY UP_DESC=$GROWTH_DESC
stats 3 0
read -r _ _ FD_MIN_ALL FD_MAX_ALL _ _ _ <<<"$REPLY"
stats 4 0
read -r _ _ UP_MIN_ALL UP_MAX_ALL _ _ _ <<<"$REPLY"

LG_ERRORS=$(awk -F'\t' '{ s += $10 + $11 } END { print s + 0 }' "$TMP/segments.tsv")
LG_REQUESTS=$(awk -F'\t' '{ s += $12 } END { print s + 0 }' "$TMP/segments.tsv")
LG_SCHEDULED=$(awk -F'\t' '{ s += $13 } END { print s + 0 }' "$TMP/segments.tsv")
JOBS_SOAK=$(awk -F'\t' '$1 == "soak"' "$TMP/jobs.tsv" | wc -l)
JOBS_FAILED=$(awk -F'\t' '$1 == "soak" && $7 != 1' "$TMP/jobs.tsv" | wc -l)
PEAK_JOBS=$(awk -F'\t' '$1 == "peak"' "$TMP/jobs.tsv" | wc -l)
PEAK_JOBS_FAILED=$(awk -F'\t' '$1 == "peak" && $7 != 1' "$TMP/jobs.tsv" | wc -l)
PEAK_ERRORS=$(awk -F'\t' '{ s += $6 + $7 } END { print s + 0 }' "$TMP/peak.tsv")
ERR_OK=$([[ $LG_ERRORS == 0 && $JOBS_FAILED == 0 && $GW_ALIVE == yes ]] && echo yes || echo no)
# The gateway colours its log levels; strip the escapes before counting.
GW_WARN=$(sed 's/\x1b\[[0-9;]*m//g' "$TMP/gateway.err" | grep -c ' WARN ' || true)
GW_ERROR=$(sed 's/\x1b\[[0-9;]*m//g' "$TMP/gateway.err" | grep -c ' ERROR ' || true)

# p99 per segment: steady if no post-warm-up segment of a type exceeds 2x that type's median.
P99_REPORT=$(awk -F'\t' -v w="$WARM_S" -v types="${TYPES[*]}" '$2 + 0 >= w { v[$3] = v[$3] " " $7 }
  END {
    ok = "yes"
    nt = split(types, tt, " ")
    for (q = 1; q <= nt; q++) {
      t = tt[q]
      if (!(t in v)) continue
      n = split(substr(v[t], 2), a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
      med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      if (a[n] > 2 * med) ok = "no"
      printf "%s: %.2f-%.2f ms (median %.2f, max/median %.2f); ", t, a[1], a[n], med, (med > 0 ? a[n] / med : 0)
    }
    printf "\t%s\n", ok
  }' "$TMP/segments.tsv")
P99_OK=${P99_REPORT##*$'\t'}
P99_DESC=${P99_REPORT%$'\t'*}
P99_RANGE=$(awk -F'\t' -v w="$WARM_S" '$2 + 0 >= w { if (lo == "" || $7 < lo) lo = $7; if ($7 > hi) hi = $7 } END { printf "%.2f-%.2f ms", lo, hi }' "$TMP/segments.tsv")
P99_RANGE_ALL=$(awk -F'\t' '{ if (lo == "" || $7 < lo) lo = $7; if ($7 > hi) hi = $7 } END { printf "%.2f-%.2f ms", lo, hi }' "$TMP/segments.tsv")
PASS=$([[ $ERR_OK == yes && $RSS_OK == yes && $FD_GROWTH == no && $UP_GROWTH == no && $P99_OK == yes ]] && echo PASS || echo FAIL)
mark() { [[ $1 == "$2" ]] && echo met || echo "**missed**"; }

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
HYPERVISOR=$(grep -qw hypervisor /proc/cpuinfo && echo "yes (virtual machine)" || echo no)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=""
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || GIT_DIRTY=" (work tree has uncommitted changes)"
CMD="DURATION=$DURATION RATE_FRACTION=$RATE_FRACTION CONNECTIONS=$CONNECTIONS SOAK_CONNECTIONS=$SOAK_CONNECTIONS ROWS=$ROWS bench/soak.sh"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

mkdir -p "$(dirname "$OUT")"
{
  echo "# Soak: mixed traffic through layer-gateway for $DURATION at ${RATE_FRACTION} x peak"
  echo
  echo "Generated by \`$CMD\` (soak started $SOAK_START_UTC UTC), commit $GIT_REV$GIT_DIRTY."
  echo
  echo "## Verdict: $PASS"
  echo
  echo "| target | result | observed |"
  echo "|---|---|---|"
  echo "| zero errors (loadgen transport errors + unexpected statuses, failed scan/warm jobs, gateway alive) | $(mark "$ERR_OK" yes) | $LG_ERRORS request errors in $LG_REQUESTS requests; $JOBS_FAILED of $JOBS_SOAK jobs failed; gateway alive at the end: $GW_ALIVE |"
  echo "| RSS flat within ±$RSS_TOLERANCE % after the warm-up (${WARM_S} s), against the sample at t=${REF_T} s | $(mark "$RSS_OK" yes) | $NPOST samples: start $(mib "$RSS_START") MiB, end $(mib "$RSS_END") MiB, min $(mib "$RSS_MIN") MiB, max $(mib "$RSS_MAX") MiB ($RSS_DEV of the start); trend $RSS_SLOPE MiB/min (least squares) |"
  echo "| no growth in open fds | $(mark "$FD_GROWTH" no) | $FD_DESC |"
  echo "| no growth in upstream connections | $(mark "$UP_GROWTH" no) | $UP_DESC |"
  echo "| p99 steady (after the warm-up no minute's p99 above 2x that request type's median minute) | $(mark "$P99_OK" yes) | $P99_DESC |"
  echo
  echo "Growth rule for fds and connections: the mean of the last third of the post-warm-up samples exceeds the mean of the first third by more than max(2, 5 %)."
  echo
  echo "## Machine"
  echo
  echo "- $NCPU CPUs ($CPU_MODEL; hypervisor: $HYPERVISOR), $MEM RAM, $(uname -sr); rustc: $(rustc --version 2>/dev/null || echo '?')"
  echo "- The machine is shared with another engineer: load average before the run $LOADAVG_START, at the end $(cut -d' ' -f1-3 /proc/loadavg). Machine busy % per sample is in the samples table; busy minus gateway and emulator is the load generators, the job loop and anything else."
  echo
  echo "## Setup"
  echo
  echo "- Release builds of \`turbopuffer-emulator\` (\`--threads $EMU_THREADS\`), \`layer-gateway\` and \`layer-loadgen\`. The gateway at its defaults apart from \`--listen\`, the upstream and \`--data-dir\`: $SHARDS shards (one per core), NVMe cache tier on, default log level."
  echo "- CPU layout: nothing pinned with taskset. The gateway pins shard i to core i itself (shard 0 on CPU0, shard 1 on CPU1); the emulator, the four load generators (one thread each) and the job loop (curl, jq) float over both cores."
  echo "- Namespace \`$NS\`: $ROWS rows written through the gateway in batches of $BATCH, $DIMS-dim vectors (cosine distance), \`category\` (c0-c19) and \`n\` (id % 1000). Initial warm: $INITIAL_WARM_MS ms."
  echo "- Request types (one layer-loadgen each): **point** = \`query-passthrough.yaml\` with \`[\"id\",\"Eq\",\${zipf}]\` (Zipf 1.0 over $ROWS ids); **ann** = \`query-ann.yaml\` (top 10); **fetch** = \`fetch-zipf.yaml\` with n = $ROWS (GET /documents/{id}); **write** = \`write-batch.yaml\` (16-row upsert, fixed ids 1000000-1000015, so the namespace does not grow; every write invalidates the namespace's hot cache entries and its ids in the tier; the write-path mirror is off, its default)."
  echo "- Job loop, every $JOB_INTERVAL s: a count scan \`{\"mode\":\"count\",\"filters\":$SCAN_FILTER}\` (must answer 200 with count $EXPECT), an ids scan with the same filter (202, polled every 100 ms until done, at most $JOB_TIMEOUT s; must complete with total $EXPECT, results read and must hold $EXPECT ids, then deleted), and \`POST /warm\` (polled until done; must complete)."
  echo "- Peak: closed loop, $CONNECTIONS connections ($PER_CONN per type), $PEAK_WARMUP warm-up + $PEAK_DURATION measured, the job loop running."
  echo "- Soak: each type open loop (\`--rate\`, latency from the scheduled send time) at $RATE_FRACTION x its own peak throughput, $SOAK_CONNECTIONS connections per loadgen, in $NSEG segments of ${SEG_S} s started on a fixed grid (t = 0, ${SEG_S}, ... s; \`--warmup 0s\`, so every request is measured; a new connection set per segment, and a segment's loadgens drain their last responses while the next segment's start), the job loop running throughout. Samples every $SAMPLE_INTERVAL s at t = 5, 15, 25 ... s (away from segment boundaries). Warm-up excluded from the flatness checks: the first $WARM_S s."
  echo
  echo "## Peak (closed loop)"
  echo
  echo "| type | connections | req/s | p50 ms | p99 ms | errors | unexpected status | statuses |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %.2f | %.2f | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$TMP/peak.tsv"
  echo "| **total** | $CONNECTIONS | **$PEAK_TOTAL** | | | | | |"
  echo
  echo "During the peak run: $PEAK_CPU. Jobs during the peak: $PEAK_JOBS, $PEAK_JOBS_FAILED failed. Peak errors ($PEAK_ERRORS) are reported, not judged."
  echo
  echo "## Soak rates"
  echo
  echo "| type | rate (req/s) |"
  echo "|---|---:|"
  for t in "${TYPES[@]}"; do echo "| $t | ${RATE[$t]} |"; done
  echo "| **total** | **$SOAK_TOTAL** ($RATE_FRACTION x $PEAK_TOTAL) |"
  echo
  echo "Scheduled $LG_SCHEDULED requests, $LG_REQUESTS answered, in ${SOAK_WALL_S} s of wall time."
  echo
  echo "## RSS, fds and connections over time"
  echo
  spark 2
  echo "- RSS        \`$REPLY\` ($(mib "$RSS_MIN_ALL")-$(mib "$RSS_MAX_ALL") MiB over the whole soak)"
  spark 2 "$REF_T"
  echo "- RSS after warm-up \`$REPLY\` ($(mib "$RSS_MIN")-$(mib "$RSS_MAX") MiB)"
  spark 3
  echo "- fds        \`$REPLY\` ($FD_MIN_ALL-$FD_MAX_ALL)"
  spark 4
  echo "- upstream   \`$REPLY\` ($UP_MIN_ALL-$UP_MAX_ALL)"
  echo
  echo "Sparklines are scaled between each series' own min and max (▁ = min, █ = max), one character per sample."
  echo
  echo "| t (s) | RSS MiB | Δ vs t=${REF_T} s | open fds | upstream conns | client conns | threads | gateway CPU % | emulator CPU % | machine busy % | iowait % | emulator RSS MiB | gateway data dir MiB |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' -v ref="$RSS_START" -v w="$WARM_S" 'NR > 1 {
    d = ($1 ~ /^[0-9]+$/ && $1 + 0 >= w) ? sprintf("%+.1f %%", ($2 - ref) / ref * 100) : "(warm-up)"
    printf "| %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %.1f |\n", $1, $2 / 1024, d, $3, $4, $5, $6, $7, $8, $9, $11, $10 / 1024, $12 / 1024 }' "$TMP/samples.tsv"
  echo
  echo "\`before\` is taken after the peak run, just before the soak. Upstream conns: established TCP connections of the gateway process to the emulator's port; client conns: to the gateway's port (4 loadgens x $SOAK_CONNECTIONS, plus the job loop's curl when it is mid-call). CPU % is per interval, 100 % = one core; machine busy % and iowait % are shares of all $NCPU cores. The data dir holds the NVMe cache tier's segment files."
  echo
  echo "## p99 per segment (ms)"
  echo
  hdr=""
  for t in "${TYPES[@]}"; do hdr+=" $t p50 | $t p99 |"; done
  echo "| segment | start (s) |$hdr req/s | errors | max send lag p99 |"
  echo "|---:|---:|$(printf '%.0s---:|---:|' "${TYPES[@]}")---:|---:|---:|"
  awk -F'\t' -v types="${TYPES[*]}" -v w="$WARM_S" '
    { key = $1 SUBSEP $3; p50[key] = $6; p99[key] = $7; start[$1] = $2; rps[$1] += $5; err[$1] += $10 + $11
      if ($14 > lag[$1]) lag[$1] = $14; if ($1 + 1 > n) n = $1 + 1 }
    END {
      nt = split(types, t, " ")
      for (i = 0; i < n; i++) {
        line = sprintf("| %d%s | %d", i + 1, (start[i] + 0 < w ? " (warm-up)" : ""), start[i])
        for (j = 1; j <= nt; j++) line = line sprintf(" | %.2f | %.2f", p50[i SUBSEP t[j]], p99[i SUBSEP t[j]])
        printf "%s | %.1f | %d | %.2f |\n", line, rps[i], err[i], lag[i]
      }
    }' "$TMP/segments.tsv"
  echo
  echo "p99 after the warm-up: $P99_RANGE over all types ($P99_RANGE_ALL including the warm-up). Send lag is how late the open loop actually sent (it is included in the latency)."
  echo
  echo "## Errors"
  echo
  echo "- Load generators: $LG_ERRORS transport errors + unexpected statuses over $LG_REQUESTS requests. Statuses per type and segment are in the raw table below."
  echo "- Jobs during the soak: $JOBS_SOAK, failed: $JOBS_FAILED."
  awk -F'\t' '$1 == "soak" { n[$3]++; ms[$3] += $6; if ($6 > mx[$3]) mx[$3] = $6; if ($7 != 1) f[$3]++ }
    END { for (k in n) printf "  - %s: %d runs, %d failed, mean %.0f ms, max %d ms\n", k, n[k], f[k], ms[k] / n[k], mx[k] }' "$TMP/jobs.tsv" | sort
  echo "- What the jobs saw (soak): $(awk -F'\t' '$1 == "soak" {
      for (i = split($8, a, " "); i > 0; i--) if (split(a[i], kv, "=") == 2 && kv[1] ~ /^(count|served_by|source|total|docs)$/) {
        k = $3 " " kv[1]
        if (kv[2] ~ /^[0-9]+$/) { if (!(k in lo) || kv[2] + 0 < lo[k]) lo[k] = kv[2] + 0; if (kv[2] + 0 > hi[k]) hi[k] = kv[2] + 0 }
        else tag[k " " kv[2]]++
      }
    }
    END {
      for (k in lo) printf "%s %d-%d; ", k, lo[k], hi[k]
      for (k in tag) printf "%s x%d; ", k, tag[k]
    }' "$TMP/jobs.tsv") (expected count and total: $EXPECT; docs = documents a warm paged)"
  if ((JOBS_FAILED > 0)); then
    echo "- Failed jobs (at most the first 20 of $JOBS_FAILED; columns: phase, t s, kind, HTTP status, job status, ms, ok, detail):"
    echo
    echo '```'
    # (no `| head`: with pipefail, the writer's SIGPIPE would end the script)
    awk -F'\t' '$1 == "soak" && $7 != 1 && ++n <= 20 { print substr($0, 1, 600) }' "$TMP/jobs.tsv"
    echo '```'
  fi
  echo "- Gateway log (stderr, default level): $GW_WARN WARN and $GW_ERROR ERROR lines over the whole run (seed, peak and soak)."
  if ((GW_WARN + GW_ERROR > 0)); then
    echo
    echo '```'
    sed 's/\x1b\[[0-9;]*m//g' "$TMP/gateway.err" | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//' | sort | uniq -c |
      sort -rn | awk 'NR <= 20 { print substr($0, 1, 300) }' || true
    echo '```'
  fi
  echo
  echo "## Gateway counters at the end (cumulative since start: seed, peak and soak)"
  echo
  echo '```'
  if [[ -s $TMP/metrics.txt ]]; then
    awk '/^layer_(requests_total|document_cache_events_total|scan_events_total|warm_events_total|upstream_errors_total|overload_rejections_total|write_rejections_total|consistency_events_total|search_history_events_total|clickstream_events_total)/ && ++n <= 80' "$TMP/metrics.txt"
  else
    echo "(no /metrics answer)"
  fi
  echo '```'
  echo
  echo "## Raw segments"
  echo
  echo '```'
  printf 'seg\tstart_s\ttype\trate\treq_s\tp50_ms\tp99_ms\tp999_ms\tmax_ms\terrors\tunexpected\trequests\tscheduled\tlag_p99_ms\tstatuses\n'
  cat "$TMP/segments.tsv"
  echo '```'
} >"$OUT.partial"
mv "$OUT.partial" "$OUT"
log "wrote $OUT"
log "verdict: $PASS (errors $ERR_OK, rss flat $RSS_OK, fd growth $FD_GROWTH, upstream growth $UP_GROWTH, p99 steady $P99_OK)"
