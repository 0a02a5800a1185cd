#!/usr/bin/env bash
# bench/pipelines.sh — the pipeline API through HTTP, beside the queue's floors, in one run:
#
#   queue     documents/s for claim (batch 16) -> complete with 8 concurrent workers: through the
#             gateway's HTTP API (tests/examples/pipeline_bench.rs), through the queue's Rust API,
#             and the raw-SQL floor (the same claim statement and a plain update on 8 plain
#             connections; queue/examples/queue_bench.rs, which also measures claim latency with
#             0, 100k and 1M completed rows)
#   vectors   rows/s of put_pipeline_document_vectors against the same rows written straight to
#             the emulator
#
# Uses the PostgreSQL that LAYER_TEST_DATABASE_URL names, or starts a throwaway one with
# scripts/pg-server (fsync off: this measures the statements, not the disk) and stops it.
# Writes bench/results/<YYYY-MM-DD>-pipelines.md. Knobs: DOCS (20000), VDOCS (4000),
# SKIP_BUILD (0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCS=${DOCS:-20000}
VDOCS=${VDOCS:-4000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}"
out="$ROOT/bench/results/$(date -u +%Y-%m-%d)-pipelines.md"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" \
    -p layer-queue --example queue_bench -p layer-e2e --example pipeline_bench
fi

source "$ROOT/bench/lib.sh"
bench_postgres

{
  echo "# Pipelines benchmark ($(date -u +%Y-%m-%d))"
  echo
  echo "bench/pipelines.sh, DOCS=$DOCS, VDOCS=$VDOCS; $(nproc) cores shared by PostgreSQL, the"
  echo "emulator, the gateway and the clients; PostgreSQL on 127.0.0.1 with fsync and"
  echo "synchronous_commit off."
  echo
  echo "## Through the gateway's HTTP API"
  echo
  "$CARGO_TARGET_DIR/release/examples/pipeline_bench" "$DOCS" "$VDOCS"
  echo
  echo "## The queue's Rust API and the raw-SQL floor (same run)"
  echo
  "$CARGO_TARGET_DIR/release/examples/queue_bench" "$DOCS"
} | tee "$out"
echo "wrote $out"
