#!/usr/bin/env bash
# bench/cpu-split.sh — where a passthrough query's CPU goes: user vs kernel time per request of
# layer-gateway (per thread: the shard, the control runtime) and of nginx, and with STRACE=1 the
# system calls per request of each (strace -c on the running process; it slows the run, the
# per-request counts stay meaningful).
#
#   bench/cpu-split.sh                 # GATEWAY_BIN defaults to the release build of this tree
#
# One emulator (ROWS rows) on CPU1, the proxy on CPU0, layer-loadgen on CPU1 running
# bench/scenarios/SCENARIO.yaml at 64 connections: 3 s warm-up, then 8 s measured per
# proxy. Everything on 127.0.0.1, killed on exit. Knobs: GATEWAY_BIN, STRACE, SKIP_BUILD, PERF
# (1: also a perf profile of the gateway during its measured run, self time by thread and
# function, PERF_TOP lines; sampling slows the gateway, so that run's CPU table is not comparable
# with runs without it; in a VM without PMU access kernel samples pile up on irq-restore paths),
# SCENARIO (query-passthrough), DIMS (16: the seeded vectors' length and the `${vector}` passed,
# as bench/callgrind.sh does), ROWS (10000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_setup cpu-split
bench_build turbopuffer-emulator layer-gateway layer-loadgen
SCENARIO=${SCENARIO:-query-passthrough}
DIMS=${DIMS:-16}
ROWS=${ROWS:-10000}
VECTOR=$(query_vector "$DIMS")
GATEWAY_BIN=${GATEWAY_BIN:-$BIN/layer-gateway}
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }

start emulator 1 X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 1
EMU=$REPLY
NS=bench-passthrough
seed_vectors "$EMU" "$NS" "$ROWS" "$DIMS"
start gateway 0 LAYER_LOG=warn -- "$GATEWAY_BIN" --listen 127.0.0.1:0 --upstream-url "http://$EMU" \
  --upstream-api-key "$KEY" --shards 1 --data-dir "$TMP/gw"
GW=$REPLY
GW_PID=${PIDS[-1]}

start_nginx 0 "$EMU"
for _ in $(seq 50); do NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1 || true); [[ -n $NGINX_WORKER ]] && break; sleep 0.1; done
[[ -n $NGINX_WORKER ]] || { log "nginx has no worker"; exit 1; }

load() { # ADDR DURATION OUT
  taskset -c 1 "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/$SCENARIO.yaml" --target "http://$1" \
    --var "api_key=$KEY" --var "ns=$NS" --var "vector=$VECTOR" --concurrency 64 --duration "$2" --format json --out "$3" >/dev/null 2>&1
}
# "name utime stime voluntary involuntary" per thread of the given processes (thread names with
# spaces joined by _; the last two are context switches: a thread that went to sleep waiting, one
# the scheduler took the CPU from).
threads() {
  for p in "$@"; do for t in /proc/"$p"/task/*; do
    echo "$(tr ' ' _ <"$t/comm") $(awk '{print $14, $15}' "$t/stat") $(awk '/^(non)?voluntary_ctxt_switches/ {printf "%s ", $2}' "$t/status")"
  done; done
}

echo "| proxy | thread | user µs/req | kernel µs/req | sleeps/req | preempted/req |"
echo "|---|---|---:|---:|---:|---:|"
for target in gateway nginx; do
  if [[ $target == gateway ]]; then addr=$GW; pids=("$GW_PID"); else addr=$NGINX_ADDR; pids=("$NGINX_PID" "$NGINX_WORKER"); fi
  load "$addr" 3s "$TMP/warm.json"
  threads "${pids[@]}" >"$TMP/before"
  if [[ $target == gateway && ${PERF:-0} == 1 ]]; then
    # A sampled wall-clock profile of the gateway's threads during 6 s of the measured run
    # (perf's default cycles event; a VM without PMU access falls back to cpu-clock).
    (sleep 1; perf record -q -F 2999 -g -p "$GW_PID" -o "$TMP/perf.data" -- sleep 6 >/dev/null 2>&1 || true) &
    PERF_JOB=$!
  fi
  load "$addr" 8s "$TMP/run.$target.json"
  threads "${pids[@]}" >"$TMP/after"
  [[ -n ${PERF_JOB:-} ]] && { wait "$PERF_JOB"; PERF_JOB=; }
  n=$(jq '.all_responses' "$TMP/run.$target.json")
  awk -v n="$n" -v hz="$CLK_TCK" -v proxy="$target" '
    NR == FNR { u0[$1] += $2; s0[$1] += $3; v0[$1] += $4; i0[$1] += $5; next }
    { u1[$1] += $2; s1[$1] += $3; v1[$1] += $4; i1[$1] += $5 }
    END {
      for (k in u1) { du = u1[k] - u0[k]; ds = s1[k] - s0[k]; dv = v1[k] - v0[k]; di = i1[k] - i0[k]
        U += du; S += ds; V += dv; I += di
        if (du + ds > 0) printf "| %s | %s | %.1f | %.1f | %.3f | %.3f |\n", proxy, k, du / hz * 1e6 / n, ds / hz * 1e6 / n, dv / n, di / n }
      printf "| %s | **all** (%d responses) | **%.1f** | **%.1f** | **%.3f** | **%.3f** |\n", proxy, n, U / hz * 1e6 / n, S / hz * 1e6 / n, V / n, I / n
    }' "$TMP/before" "$TMP/after"
done

if [[ ${STRACE:-0} == 1 ]]; then
  command -v strace >/dev/null || { apt-get install -y -qq strace >/dev/null; }
  for target in gateway nginx; do
    if [[ $target == gateway ]]; then addr=$GW; pid=$GW_PID; else addr=$NGINX_ADDR; pid=$NGINX_WORKER; fi
    (timeout -s INT 9 strace -c -f -p "$pid" -o "$TMP/strace.$target" >/dev/null 2>&1 || true) &
    sp=$!
    sleep 0.5
    load "$addr" 8s "$TMP/strace-run.$target.json"
    wait "$sp" || true
    n=$(jq '.all_responses' "$TMP/strace-run.$target.json")
    echo
    echo "$target: system calls per request (strace -c, $n responses)"
    awk -v n="$n" '$4 ~ /^[0-9]+$/ && $NF != "total" {printf "  %-14s %.3f\n", $NF, $4 / n}' "$TMP/strace.$target" | sort -k2 -nr | head -6
  done
fi
if [[ ${PERF:-0} == 1 && -s $TMP/perf.data ]]; then
  echo
  echo "Self time by thread and function (perf, the gateway's measured run; top ${PERF_TOP:-40}):"
  echo
  echo '```'
  perf report -i "$TMP/perf.data" --no-children --sort comm,sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -"${PERF_TOP:-40}" | cut -c1-160 || true
  echo '```'
fi
