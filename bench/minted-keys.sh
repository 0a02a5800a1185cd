#!/usr/bin/env bash
# bench/minted-keys.sh — the P1 query passthrough (bench/scenarios/query-passthrough.yaml) through
# one layer-gateway, with the configured bearer and with a minted key, in one run:
#
#   configured  the store credential (deriveFromStore: admin), found in the configured-key map
#   minted      a key minted with POST /v2/keys ({"vectorstore.default": read+write}), found after
#               a miss in the configured map, in the minted map (lock-free), with a constant-time
#               hash compare, an expiry check and the once-per-5-minutes lastSeen check
#
# Layout as in compare.sh: the gateway (`--shards 1`, otherwise its defaults, plus
# LAYER_DATABASE_URL for the key store) alone on PROXY_CPU; the emulator and layer-loadgen on
# LOAD_CPU. PostgreSQL (LAYER_TEST_DATABASE_URL, or a throwaway one from bench_postgres, in a
# database of its own) floats. The two keys alternate in ROUNDS rounds whose order flips every
# round (configured, minted | minted, configured | ...), so drift over the run cancels in the mean
# of the per-round ratios. Gateway CPU per request is from /proc/PID/stat as in compare.sh.
#
# Before measuring it waits (up to BUSY_WAIT s) for the machine to be under BUSY_LIMIT % busy and
# notes it when it was not. Writes bench/results/<YYYY-MM-DD>-minted-keys.md. Everything listens
# on 127.0.0.1 and everything started here is stopped by PID on exit.
#
# Before every round it also waits up to ROUND_WAIT s for the machine to be under BUSY_LIMIT %,
# and the report adds the mean ratios over the rounds whose two runs saw comparable foreign load
# (within MATCH points), since the gateway's CPU per request depends on how busy the machine is.
#
# Knobs (environment): CONCURRENCY (64), DURATION (10s), WARMUP (2s), ROUNDS (8; >= 3), ROWS
# (10000), DIMS (16), BATCH (1000), SHARDS (1), PROXY_CPU (0), LOAD_CPU (1), TOLERANCE (2 %),
# BUSY_LIMIT (15 %), BUSY_WAIT (60 s), ROUND_WAIT (30 s), MATCH (5), SKIP_BUILD (0), OUT (result
# path), KEEP_TMP (0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCENARIO=query-passthrough
SCENARIO_FILE=$ROOT/bench/scenarios/$SCENARIO.yaml
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-8}
ROWS=${ROWS:-10000}
DIMS=${DIMS:-16}
BATCH=${BATCH:-1000}
SHARDS=${SHARDS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TOLERANCE=${TOLERANCE:-2}
BUSY_LIMIT=${BUSY_LIMIT:-15}
BUSY_WAIT=${BUSY_WAIT:-60}
ROUND_WAIT=${ROUND_WAIT:-30}
MATCH=${MATCH:-5}
KEEP_TMP=${KEEP_TMP:-0}
NCPU=$(nproc)
NS=bench-$SCENARIO

source "$ROOT/bench/lib.sh"
# A database preset by the caller is shared: the key store goes into a database of its own there.
PG_PRESET=${LAYER_TEST_DATABASE_URL:+1}
bench_postgres # a throwaway cluster unless LAYER_TEST_DATABASE_URL is set (sets an EXIT trap)
bench_setup minted-keys # BIN, KEY, CLK_TCK, TMP, PIDS (replaces the EXIT trap: see cleanup)
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-minted-keys.md}
DB_URL=$LAYER_TEST_DATABASE_URL
DB_NAME=""
NOTES=()

die() {
  log "error: $*"
  exit 1
}

# Stops what this script started (by PID), drops its database, stops the throwaway cluster.
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 25); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $DB_NAME ]]; then
    psql "$LAYER_TEST_DATABASE_URL" -qAtc "drop database if exists $DB_NAME" >/dev/null 2>&1 || true
  fi
  if declare -F bench_stop_postgres >/dev/null; then bench_stop_postgres; fi
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
((ROUNDS >= 3)) || die "ROUNDS must be at least 3"
((PROXY_CPU < NCPU && LOAD_CPU < NCPU)) || die "PROXY_CPU/LOAD_CPU out of range (nproc=$NCPU)"
for t in taskset curl jq awk psql; do command -v "$t" >/dev/null || die "$t is required"; done

if [[ $PG_PRESET == 1 ]]; then
  [[ $DB_URL =~ ^(postgres(ql)?://[^/?]+)(/[^?]*)?(\?.*)?$ ]] ||
    die "LAYER_TEST_DATABASE_URL is not a postgresql:// URL: cannot make a database of our own"
  DB_NAME=layer_bench_keys_$$_$RANDOM
  psql "$LAYER_TEST_DATABASE_URL" -qAtc "create database $DB_NAME" >/dev/null ||
    die "could not create database $DB_NAME"
  DB_URL=${BASH_REMATCH[1]}/$DB_NAME${BASH_REMATCH[4]}
fi
PG_PID=${LAYER_TEST_PG_PID:-}

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
# pg_ticks: REPLY = CPU of the PostgreSQL server (postmaster and its live children), or "".
pg_ticks() {
  [[ -n $PG_PID && -r /proc/$PG_PID/stat ]] || {
    REPLY=""
    return
  }
  local kids
  kids=$(cat "/proc/$PG_PID/task/$PG_PID/children" 2>/dev/null || true)
  # shellcheck disable=SC2086
  proc_ticks "$PG_PID" $kids
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

# ---------------------------------------------------------------- build, emulator, seed data
bench_build turbopuffer-emulator layer-gateway layer-loadgen
for b in turbopuffer-emulator layer-gateway layer-loadgen; do
  [[ -x $BIN/$b ]] || die "missing $BIN/$b (run without SKIP_BUILD=1)"
done
LOADGEN=$BIN/layer-loadgen

start emulator "$LOAD_CPU" -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU_ADDR=$REPLY EMU_PID=${PIDS[-1]}
[[ $EMU_ADDR == 127.0.0.1:* ]] || die "emulator is not on 127.0.0.1: $EMU_ADDR"
log "emulator on $EMU_ADDR (pid $EMU_PID, CPU$LOAD_CPU)"

log "seeding namespace $NS: $ROWS rows, $DIMS-dim vectors, batches of $BATCH"
for ((s = 0; s < ROWS; s += BATCH)); do
  awk -v start="$s" -v n="$BATCH" -v rows="$ROWS" -v dims="$DIMS" 'BEGIN {
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

# ---------------------------------------------------------------- gateway (with the key store)
start gateway "$PROXY_CPU" "LAYER_DATABASE_URL=$DB_URL" -- "$BIN/layer-gateway" \
  --listen 127.0.0.1:0 --upstream-url "http://$EMU_ADDR" --upstream-api-key "$KEY" \
  --shards "$SHARDS" --data-dir "$TMP/gateway-data"
GW_ADDR=$REPLY GW_PID=${PIDS[-1]}
[[ $GW_ADDR == 127.0.0.1:* ]] || die "gateway is not on 127.0.0.1: $GW_ADDR"
log "gateway on $GW_ADDR (pid $GW_PID, CPU$PROXY_CPU, --shards $SHARDS, key store in PostgreSQL)"

# ---------------------------------------------------------------- mint a key
MINT_BODY='{"name":"bench","entitlements":{"vectorstore.default":{"scopes":["read","write"]}}}'
code=$(curl -sS -o "$TMP/mint.json" -w '%{http_code}' -X POST "http://$GW_ADDR/v2/keys" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data "$MINT_BODY")
[[ $code == 201 ]] || die "POST /v2/keys answered $code: $(cat "$TMP/mint.json")"
MINTED=$(jq -r .token "$TMP/mint.json")
KEY_ID=$(jq -r .keyId "$TMP/mint.json")
[[ $MINTED == hvl_* ]] || die "no token in the mint answer"
log "minted key $KEY_ID (token not logged)"

# ---------------------------------------------------------------- smoke test
token_of() { [[ $1 == configured ]] && REPLY=$KEY || REPLY=$MINTED; }
for k in configured minted; do
  token_of "$k"
  "$LOADGEN" --scenario "$SCENARIO_FILE" --target "http://$GW_ADDR" --var "ns=$NS" \
    --var "api_key=$REPLY" --concurrency 1 --warmup 0s --duration 300ms --format json \
    --out "$TMP/smoke-$k.json" 2>"$TMP/smoke-$k.err" ||
    die "smoke test with the $k key failed: $(cat "$TMP/smoke-$k.err") $(jq -c .status "$TMP/smoke-$k.json" 2>/dev/null)"
done
# Auth is really checked: a token that is neither is refused.
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://$GW_ADDR/v2/namespaces/$NS/query" \
  -H "Authorization: Bearer hvl_not-a-key" -H 'Content-Type: application/json' \
  --data '{"filters":["id","Eq",4242],"rank_by":["id","asc"],"top_k":1}')
[[ $code == 401 ]] || die "an unknown token got $code, not 401"
log "smoke test passed (configured 200, minted 200, unknown 401)"

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
  NOTES+=("The machine was ${PRE_BUSY}% busy (all CPUs) just before measuring, after waiting ${waited} s (limit ${BUSY_LIMIT}%): other work was running. See the foreign CPU column.")
  log "machine still ${PRE_BUSY}% busy after ${waited} s; measuring anyway (noted in the results)"
fi
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- rounds
RAW=$TMP/raw.tsv
printf 'round\tkey\treq_s\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tmax_ms\tgw_us_req\tgw_cpu_pct\temu_us_req\tloadgen_cpu_pct\tpg_cpu_pct\tforeign_cpu_pct\tsteal_pct\terrors\tall_responses\n' >"$RAW"

run_one() { # run_one ROUND KEY
  local round=$1 k=$2 out=$TMP/run-$1-$2.json token
  token_of "$k"
  token=$REPLY
  local g0 e0 c0 q0 b0 tot0 s0 g1 e1 c1 q1 b1 tot1 s1 ns0 ns1 rc=0
  proc_ticks "$GW_PID"
  g0=$REPLY
  proc_ticks "$EMU_PID"
  e0=$REPLY
  children_ticks
  c0=$REPLY
  pg_ticks
  q0=$REPLY
  sys_ticks
  b0=$BUSY tot0=$TOTAL s0=$STEAL
  ns0=$(date +%s%N)
  taskset -c "$LOAD_CPU" "$LOADGEN" --scenario "$SCENARIO_FILE" --target "http://$GW_ADDR" \
    --var "ns=$NS" --var "api_key=$token" --concurrency "$CONCURRENCY" --warmup "$WARMUP" \
    --duration "$DURATION" --format json --out "$out" --allow-errors 2>"$TMP/run-$1-$2.err" || rc=$?
  ns1=$(date +%s%N)
  sys_ticks
  b1=$BUSY tot1=$TOTAL s1=$STEAL
  pg_ticks
  q1=$REPLY
  children_ticks
  c1=$REPLY
  proc_ticks "$EMU_PID"
  e1=$REPLY
  proc_ticks "$GW_PID"
  g1=$REPLY
  ((rc == 0)) || die "layer-loadgen failed with the $k key: $(cat "$TMP/run-$1-$2.err")"
  local dq=0 has_pg=""
  if [[ -n $q0 && -n $q1 ]]; then dq=$((q1 - q0)) has_pg=1; fi
  jq -r --arg round "$round" --arg k "$k" --argjson dg $((g1 - g0)) --argjson de $((e1 - e0)) \
    --argjson dc $((c1 - c0)) --argjson dq "$dq" --arg has_pg "$has_pg" \
    --argjson db $((b1 - b0)) --argjson dtot $((tot1 - tot0)) --argjson ds $((s1 - s0)) \
    --argjson wall_ns $((ns1 - ns0)) --argjson hz "$CLK_TCK" --argjson ncpu "$NCPU" '
    def r(n): (. * n | round) / n;
    ([.all_responses, 1] | max) as $n | ($wall_ns / 1e9) as $wall |
    [ $round, $k, (.throughput_rps | r(1)),
      (.latency_us.p50 / 1000 | r(1000)), (.latency_us.p90 / 1000 | r(1000)),
      (.latency_us.p99 / 1000 | r(1000)), (.latency_us.p99_9 / 1000 | r(1000)),
      (.latency_us.max / 1000 | r(1000)),
      ($dg / $hz * 1e6 / $n | r(100)),
      ($dg / $hz / $wall * 100 | r(10)),
      ($de / $hz * 1e6 / $n | r(10)),
      ($dc / $hz / $wall * 100 | r(10)),
      (if $has_pg == "1" then ($dq / $hz / $wall * 100 | r(10)) else "-" end),
      ((($db - $dg - $de - $dc - $dq) / $hz) / ($wall * $ncpu) * 100 | r(10)),
      ($ds / ([$dtot, 1] | max) * 100 | r(10)),
      (.errors.connect + .errors.io + .errors.timeout + .unexpected_status),
      $n ] | @tsv' "$out" >>"$RAW"
  log "round $round $k: $(tail -1 "$RAW" | cut -f3,4,6,9 | tr '\t' ' ') (req/s, p50 ms, p99 ms, gateway CPU µs/req)"
}

ROUND_BUSY=()
for ((round = 1; round <= ROUNDS; round++)); do
  # Our processes are idle between runs: what is busy now is other work.
  rw=0
  busy_pct 1
  while ((REPLY > BUSY_LIMIT && rw < ROUND_WAIT)); do
    sleep 2
    rw=$((rw + 3))
    busy_pct 1
  done
  ROUND_BUSY+=("round $round: ${REPLY}% (waited ${rw} s)")
  if ((round % 2)); then order=(configured minted); else order=(minted configured); fi
  for k in "${order[@]}"; do run_one "$round" "$k"; done
done

# The minted principal served the minted rounds: its use was reported (lastSeenAt).
sleep 1
LAST_SEEN=$(curl -sS "http://$GW_ADDR/v2/keys/$KEY_ID" -H "Authorization: Bearer $KEY" | jq -r '.lastSeenAt // "unset"')

# ---------------------------------------------------------------- report
# Per-round table and statistics (awk): the per-round ratio minted/configured of req/s and of
# gateway CPU µs/req, their mean, standard deviation and a 95 % interval (Student t), the ratio of
# the means, and the run-to-run spread of each key alone (coefficient of variation).
STATS=$TMP/stats.txt
awk -F'\t' -v tol="$TOLERANCE" -v match_pts="$MATCH" '
  function tq(df) { # two-sided 95 % Student t
    split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086", t, " ")
    return df < 1 ? 0 : (df <= 20 ? t[df] : 2.0)
  }
  function stat(a, n, pre,   i, s, ss, m, sd) {
    s = 0; for (i = 1; i <= n; i++) s += a[i]; m = s / n
    ss = 0; for (i = 1; i <= n; i++) ss += (a[i] - m) ^ 2
    sd = n > 1 ? sqrt(ss / (n - 1)) : 0
    MEAN[pre] = m; SD[pre] = sd; HALF[pre] = tq(n - 1) * sd / sqrt(n)
  }
  NR == 1 { next }
  { v[$1, $2, "rps"] = $3; v[$1, $2, "p50"] = $4; v[$1, $2, "p99"] = $6; v[$1, $2, "cpu"] = $9
    v[$1, $2, "foreign"] = $14; if ($1 > nr) nr = $1 }
  END {
    for (r = 1; r <= nr; r++) {
      rr[r] = v[r, "minted", "rps"] / v[r, "configured", "rps"]
      rc[r] = v[r, "minted", "cpu"] / v[r, "configured", "cpu"]
      rp50[r] = v[r, "minted", "p50"] / v[r, "configured", "p50"]
      rp99[r] = v[r, "minted", "p99"] / v[r, "configured", "p99"]
      cr[r] = v[r, "configured", "rps"]; mr[r] = v[r, "minted", "rps"]
      cc[r] = v[r, "configured", "cpu"]; mc[r] = v[r, "minted", "cpu"]
      cp50[r] = v[r, "configured", "p50"]; mp50[r] = v[r, "minted", "p50"]
      cp99[r] = v[r, "configured", "p99"]; mp99[r] = v[r, "minted", "p99"]
      printf "ROW\t| %d | %s | %.0f | %.0f | **%.4f** | %.3f / %.3f | %.3f / %.3f | %.2f | %.2f | **%.4f** | %s / %s |\n", \
        r, (r % 2 ? "configured, minted" : "minted, configured"), cr[r], mr[r], rr[r], \
        cp50[r], mp50[r], cp99[r], mp99[r], cc[r], mc[r], rc[r], \
        v[r, "configured", "foreign"], v[r, "minted", "foreign"]
    }
    nm = 0
    for (r = 1; r <= nr; r++) {
      d = v[r, "minted", "foreign"] - v[r, "configured", "foreign"]
      if (d <= match_pts && d >= -match_pts) { nm++; mrr[nm] = rr[r]; mrc[nm] = rc[r]; mlist = mlist (nm > 1 ? ", " : "") r }
    }
    if (nm >= 2) {
      stat(mrr, nm, "mrr"); stat(mrc, nm, "mrc")
      printf "MATCH\tOver the %d rounds whose two runs saw foreign CPU within %g points of each other (rounds %s): req/s minted / configured = %.4f ± %.4f (95 %% interval %.4f-%.4f), gateway CPU/request %.4f ± %.4f (%.4f-%.4f).\n", \
        nm, match_pts, mlist, MEAN["mrr"], SD["mrr"], MEAN["mrr"] - HALF["mrr"], MEAN["mrr"] + HALF["mrr"], \
        MEAN["mrc"], SD["mrc"], MEAN["mrc"] - HALF["mrc"], MEAN["mrc"] + HALF["mrc"]
    } else printf "MATCH\tOnly %d round(s) had runs with foreign CPU within %g points of each other: no matched-load summary.\n", nm, match_pts
    stat(rr, nr, "rr"); stat(rc, nr, "rc"); stat(rp50, nr, "rp50"); stat(rp99, nr, "rp99")
    stat(cr, nr, "cr"); stat(mr, nr, "mr"); stat(cc, nr, "cc"); stat(mc, nr, "mc")
    stat(cp50, nr, "cp50"); stat(mp50, nr, "mp50"); stat(cp99, nr, "cp99"); stat(mp99, nr, "mp99")
    printf "SUM\t| req/s | %.0f | %.0f | %.4f | %.4f ± %.4f (%.4f-%.4f) | %.1f %% / %.1f %% |\n", \
      MEAN["cr"], MEAN["mr"], MEAN["mr"] / MEAN["cr"], MEAN["rr"], SD["rr"], \
      MEAN["rr"] - HALF["rr"], MEAN["rr"] + HALF["rr"], 100 * SD["cr"] / MEAN["cr"], 100 * SD["mr"] / MEAN["mr"]
    printf "SUM\t| gateway CPU µs/req | %.2f | %.2f | %.4f | %.4f ± %.4f (%.4f-%.4f) | %.1f %% / %.1f %% |\n", \
      MEAN["cc"], MEAN["mc"], MEAN["mc"] / MEAN["cc"], MEAN["rc"], SD["rc"], \
      MEAN["rc"] - HALF["rc"], MEAN["rc"] + HALF["rc"], 100 * SD["cc"] / MEAN["cc"], 100 * SD["mc"] / MEAN["mc"]
    printf "SUM\t| p50 ms | %.3f | %.3f | %.4f | %.4f ± %.4f (%.4f-%.4f) | %.1f %% / %.1f %% |\n", \
      MEAN["cp50"], MEAN["mp50"], MEAN["mp50"] / MEAN["cp50"], MEAN["rp50"], SD["rp50"], \
      MEAN["rp50"] - HALF["rp50"], MEAN["rp50"] + HALF["rp50"], 100 * SD["cp50"] / MEAN["cp50"], 100 * SD["mp50"] / MEAN["mp50"]
    printf "SUM\t| p99 ms | %.3f | %.3f | %.4f | %.4f ± %.4f (%.4f-%.4f) | %.1f %% / %.1f %% |\n", \
      MEAN["cp99"], MEAN["mp99"], MEAN["mp99"] / MEAN["cp99"], MEAN["rp99"], SD["rp99"], \
      MEAN["rp99"] - HALF["rp99"], MEAN["rp99"] + HALF["rp99"], 100 * SD["cp99"] / MEAN["cp99"], 100 * SD["mp99"] / MEAN["mp99"]
    # Verdict inputs: mean ratio and the 95 % interval of each headline metric.
    printf "V\trps\t%.4f\t%.4f\t%.4f\n", MEAN["rr"], MEAN["rr"] - HALF["rr"], MEAN["rr"] + HALF["rr"]
    printf "V\tcpu\t%.4f\t%.4f\t%.4f\n", MEAN["rc"], MEAN["rc"] - HALF["rc"], MEAN["rc"] + HALF["rc"]
  }' "$RAW" >"$STATS"

# verdict NAME LABEL: REPLY = a sentence on the mean ratio and its interval against TOLERANCE.
verdict() {
  local mean lo hi
  read -r mean lo hi < <(awk -F'\t' -v m="$1" '$1 == "V" && $2 == m { print $3, $4, $5 }' "$STATS")
  REPLY=$(awk -v m="$mean" -v lo="$lo" -v hi="$hi" -v tol="$TOLERANCE" -v label="$2" 'BEGIN {
    d = (m - 1) * 100; a = d < 0 ? -d : d; t = tol / 100
    s = sprintf("%s: minted / configured = %.4f (%+.2f %%), 95 %% interval %.4f-%.4f", label, m, d, lo, hi)
    if (a <= tol && lo >= 1 - t && hi <= 1 + t) s = s sprintf(": **within %g %%**, and the whole interval is inside ±%g %%.", tol, tol)
    else if (a <= tol) s = s sprintf(": **within %g %% on the mean**, but the interval reaches beyond ±%g %%, so this run cannot rule out a difference a little over %g %%.", tol, tol, tol)
    else if (lo <= 1 && hi >= 1) s = s sprintf(": the mean is **outside %g %%**, but the interval includes 1 (no difference); the run was too noisy to decide.", tol)
    else s = s sprintf(": **outside %g %%**.", tol)
    print s
  }')
}
verdict rps "Requests/s"
V_RPS=$REPLY
verdict cpu "Gateway CPU per request"
V_CPU=$REPLY

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
HYPERVISOR=$(grep -qw hypervisor /proc/cpuinfo && echo "yes (virtual machine)" || echo no)
RUSTC=$(cd "$ROOT" && rustc --version)
PG_V=$(psql "$DB_URL" -qAtc 'show server_version' 2>/dev/null || echo unknown)
GIT_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(cd "$ROOT" && [[ -n $(git status --porcelain 2>/dev/null) ]] && echo " (work tree has uncommitted changes)" || true)
total_errors=$(awk -F'\t' 'NR > 1 { s += $16 } END { print s + 0 }' "$RAW")
((total_errors == 0)) || NOTES+=("$total_errors measured requests failed or returned an unexpected status; see the errors column of the raw runs.")
read -r min_foreign mean_foreign max_foreign < <(awk -F'\t' 'NR > 1 { f = $14 + 0; s += f; n++
  if (n == 1 || f < lo) lo = f; if (n == 1 || f > hi) hi = f } END { printf "%.1f %.1f %.1f\n", lo, s / n, hi }' "$RAW")
if awk -v m="$max_foreign" 'BEGIN { exit !(m > 5) }'; then
  NOTES+=("Foreign CPU (machine busy time not spent in the gateway, emulator, load generator or PostgreSQL) reached ${max_foreign}% of the machine in at least one run: other work shared the CPUs then. The per-round ratios compare runs a few seconds apart, which is what the alternation is for; compare the foreign CPU of the two runs of a round.")
fi
[[ $LAST_SEEN != unset ]] || NOTES+=("The minted key's lastSeenAt was still unset after the runs: the use report did not arrive (it is batched off the request path).")
((${#NOTES[@]})) || NOTES+=("None: every run finished without errors and with little foreign CPU.")

mkdir -p "$(dirname "$OUT")"
{
  echo "# Minted key vs configured key: P1 query passthrough through layer-gateway"
  echo
  echo "Generated by \`CONCURRENCY=$CONCURRENCY WARMUP=$WARMUP DURATION=$DURATION ROUNDS=$ROUNDS ROWS=$ROWS bench/minted-keys.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $GIT_REV$GIT_DIRTY."
  echo
  echo "Question: do requests authenticated with a minted key (\`POST /v2/keys\`) cost more than with the configured bearer? Target: requests/s and gateway CPU per request within $TOLERANCE % (noise)."
  echo
  echo "## Verdict"
  echo
  echo "- $V_RPS"
  echo "- $V_CPU"
  echo
  echo "The ratios are the mean over $ROUNDS rounds of the per-round ratio (the two runs of a round are back to back, and the order flips every round, so a drift over the run cancels); the interval is mean ± t(0.975, $((ROUNDS - 1))) × sd / √$ROUNDS."
  echo
  echo "## Machine and load"
  echo
  echo "- CPUs (nproc): $NCPU; model: $CPU_MODEL; hypervisor: $HYPERVISOR; kernel: $(uname -sr)"
  echo "- rustc: $RUSTC; PostgreSQL: $PG_V"
  echo "- Before measuring: loadavg $LOADAVG; ${START_BUSY}% of all CPUs busy at first check, ${PRE_BUSY}% when measuring started (limit $BUSY_LIMIT%, waited ${waited} s)."
  echo "- Machine busy just before each round (all CPUs, our processes idle; waited up to $ROUND_WAIT s for under $BUSY_LIMIT %): $(IFS=';'; echo "${ROUND_BUSY[*]}" | sed 's/;/; /g')."
  echo "- During the runs: foreign CPU (busy time of other work, as a share of all $NCPU CPUs) min $min_foreign %, mean $mean_foreign %, max $max_foreign % per run (approximate to a few %, can read slightly negative; above about 5 % a run shared the machine)."
  echo
  echo "## Setup"
  echo
  echo "- Scenario \`bench/scenarios/$SCENARIO.yaml\` (P1: point query by id, \`top_k\` 1), namespace \`$NS\` seeded with $ROWS rows of $DIMS-dim vectors through the emulator's HTTP API; the bearer is the scenario's \`\${api_key}\` (\`--var api_key=...\`)."
  echo "- One \`layer-gateway --shards $SHARDS\` (release, otherwise its defaults; \`deriveFromStore\`: the upstream key is the admin bearer), with \`LAYER_DATABASE_URL\` naming a PostgreSQL database of its own for the key store ($([[ $PG_PRESET == 1 ]] && echo "in the cluster \`LAYER_TEST_DATABASE_URL\` names" || echo "a throwaway cluster from \`scripts/pg-server\`, fsync off")), pinned to CPU$PROXY_CPU; \`turbopuffer-emulator --threads 1\` and \`layer-loadgen\` on CPU$LOAD_CPU; PostgreSQL not pinned."
  echo "- **configured**: the store credential (found in the configured-key map). **minted**: a key minted at start with \`POST /v2/keys\` \`$MINT_BODY\` (found after a miss in the configured map, in the minted map: constant-time hash compare, expiry check, lastSeen check). The minted key's \`lastSeenAt\` after the runs: $LAST_SEEN. An unknown token was refused with 401."
  echo "- Closed loop, $CONCURRENCY keep-alive connections, $WARMUP warm-up then $DURATION measured per run; $ROUNDS rounds of one run per key, order flipped every round."
  echo "- gateway CPU µs/req = the gateway's utime+stime (from /proc/PID/stat, all threads) over the whole loadgen run, divided by every response of the run (warm-up included), as in compare.sh. PostgreSQL CPU (postmaster and backends) is in the raw table; the key map's change counter is polled every 250 ms in both kinds of run."
  echo
  echo "## Per round"
  echo
  echo "| round | order | req/s configured | req/s minted | req/s minted / configured | p50 ms conf. / minted | p99 ms conf. / minted | CPU µs/req configured | CPU µs/req minted | CPU/req minted / configured | foreign CPU % conf. / minted |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '$1 == "ROW" { print $2 }' "$STATS"
  echo
  echo "## Summary"
  echo
  echo "| metric | mean configured | mean minted | ratio of means | mean per-round ratio ± sd (95 % interval) | run-to-run CV configured / minted |"
  echo "|---|---:|---:|---:|---:|---:|"
  awk -F'\t' '$1 == "SUM" { print $2 }' "$STATS"
  echo
  echo "The run-to-run coefficient of variation (sd / mean over the runs of one key) is the noise of a single run on this machine; the per-round ratio removes the part of it that two back-to-back runs share."
  echo
  echo "Matched load: $(awk -F'\t' '$1 == "MATCH" { print $2 }' "$STATS") The gateway's CPU per request falls when other work shares the machine (probably because it is woken less often and handles more requests per wake-up), so a round whose two runs saw different foreign load compares unlike conditions."
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
