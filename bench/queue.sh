#!/usr/bin/env bash
# bench/queue.sh — the pipeline queue (crate layer-queue) straight through its Rust API, no HTTP:
#
#   throughput   documents/s for claim (batch 16) -> guarded complete with 8 concurrent workers,
#                beside the raw-SQL floor (the same claim statement and a plain update on 8
#                plain connections), in one run
#   latency      claim p50/p99 and documents/s with 0, 100k and 1M completed rows in the table
#
# Uses the PostgreSQL that LAYER_TEST_DATABASE_URL names, or starts a throwaway one with
# scripts/pg-server (fsync off: this measures the queue's statements, not the disk) and stops it.
# Writes bench/results/<YYYY-MM-DD>-queue.md. Knobs: DOCS (40000), SKIP_BUILD (0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCS=${DOCS:-40000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}"
out="$ROOT/bench/results/$(date -u +%Y-%m-%d)-queue.md"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p layer-queue --example queue_bench --manifest-path "$ROOT/Cargo.toml"
fi

source "$ROOT/bench/lib.sh"
bench_postgres

{
  echo "# Queue benchmark ($(date -u +%Y-%m-%d))"
  echo
  echo "bench/queue.sh, DOCS=$DOCS; $(nproc) cores shared with other work; PostgreSQL"
  echo "$("${LAYER_PG_BIN:-/usr/lib/postgresql/15/bin}/psql" "$LAYER_TEST_DATABASE_URL" -qAtc 'show server_version' 2>/dev/null || echo '?') on"
  echo "127.0.0.1 with fsync and synchronous_commit off. Through the Rust API (no HTTP)."
  echo
  "$CARGO_TARGET_DIR/release/examples/queue_bench" "$DOCS"
} | tee "$out"
echo "wrote $out"
