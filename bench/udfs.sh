#!/usr/bin/env bash
# bench/udfs.sh — the UDF runtime through HTTP, beside the floor of its upstream writes, in one
# run (tests/examples/udf_bench/):
#
#   discovery        rows/s for `POST /v2/udfs/{id}/discover` and the sweep it starts, over a
#                    namespace of ROWS rows written through the gateway
#   claim + complete rows/s for 4 concurrent workers with a no-op function (claim BATCH ->
#                    complete every item with {"tag": "x"}) until nothing is pending
#   total            rows/s over both
#   floor            the same patch_columns writes (BATCH ids a call, 4 writers, the same columns)
#                    straight to the emulator, before and after; the ratio gateway path / floor
#   where time goes  the gateway's /metrics histograms over each phase and the CPU each part used
#
# The comparison runs twice: with the emulator answering writes at once, and with every upstream
# write (both paths) delayed DELAY_MS, as a remote Turbopuffer's are, on ROWS/5 rows.
#
# Uses the PostgreSQL that LAYER_TEST_DATABASE_URL names, or starts a throwaway one with
# scripts/pg-server (fsync off: this measures the statements, not the disk) and stops it.
# Before measuring it waits (up to BUSY_WAIT s) for the machine to be under BUSY_LIMIT % busy, as
# compare.sh does, and notes it when it was not. Writes bench/results/<YYYY-MM-DD>-udfs.md.
# Knobs: ROWS (100000), BATCH (32), DELAY_MS (20; 0 skips the delayed comparison), BUSY_LIMIT
# (15), BUSY_WAIT (120), SKIP_BUILD (0), OUT (the results file).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-100000}
BATCH=${BATCH:-32}
DELAY_MS=${DELAY_MS:-20}
BUSY_LIMIT=${BUSY_LIMIT:-15}
BUSY_WAIT=${BUSY_WAIT:-120}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}"
out=${OUT:-"$ROOT/bench/results/$(date -u +%Y-%m-%d)-udfs.md"}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p layer-e2e --example udf_bench
fi

source "$ROOT/bench/lib.sh"
bench_postgres
# The bench reads the PostgreSQL server's CPU from LAYER_TEST_PG_PID (set when bench_postgres
# started one); export it so the child sees it.
if [ -n "${LAYER_TEST_PG_PID:-}" ]; then export LAYER_TEST_PG_PID; fi

# busy_pct SECONDS: REPLY = % of all CPUs busy (user, nice, system, irq, softirq) over it.
busy_pct() {
  local cpu user nice system idle iowait irq softirq steal rest b0 t0
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  b0=$((user + nice + system + irq + softirq)) t0=$((b0 + idle + iowait + steal))
  sleep "$1"
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  local b1=$((user + nice + system + irq + softirq))
  local t1=$((b1 + idle + iowait + steal))
  REPLY=$(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
waited=0
busy_pct 2
while ((REPLY > BUSY_LIMIT && waited < BUSY_WAIT)); do
  log "machine ${REPLY}% busy (limit ${BUSY_LIMIT}%); waiting"
  sleep 3
  waited=$((waited + 5))
  busy_pct 2
done
quiet="the machine was ${REPLY}% busy just before (limit ${BUSY_LIMIT}%, waited ${waited} s)"
if ((REPLY > BUSY_LIMIT)); then
  quiet="$quiet: **other work was running; see the \"other processes\" columns**"
fi

started=$(date +%s)
{
  echo "# UDF runtime benchmark ($(date -u +%Y-%m-%d))"
  echo
  echo "bench/udfs.sh, ROWS=$ROWS, BATCH=$BATCH, DELAY_MS=$DELAY_MS; $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))"
  echo "shared by PostgreSQL, the emulator, the gateway and the clients (the emulator, the gateway"
  echo "and the clients in one process, \`udf_bench\`; nothing pinned); PostgreSQL on 127.0.0.1 with"
  echo "fsync and synchronous_commit off; the gateway at its defaults (2 shards, the write path's"
  echo "stamp), the emulator on one runtime thread. Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg);"
  echo "$quiet. Source tree: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- gateway queue emulator || echo ' with uncommitted changes in gateway/, queue/ or emulator/')."
  echo
  "$CARGO_TARGET_DIR/release/examples/udf_bench" "$ROWS" "$BATCH" "$DELAY_MS"
  echo
  echo "Run time, setup included: $(($(date +%s) - started)) s. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$out"
echo "wrote $out"
