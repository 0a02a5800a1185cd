# bench/lib.sh — the pieces every single-machine benchmark script shares. Source it after setting
# ROOT, then call `bench_setup TAG` and `bench_build PACKAGE...`:
#
#   bench_setup TAG      CARGO_TARGET_DIR (default ~/.cache/layer/target), BIN (release dir), KEY
#                        (a random bearer), CLK_TCK, TMP (a temp dir removed on exit), PIDS (killed
#                        on exit), jq installed when missing
#   bench_build PKG...   cargo build --release of those packages, unless SKIP_BUILD=1
#   log MSG              a timestamped line on stderr
#   start NAME CPU ENV... -- ARGV...
#                        runs ARGV pinned to CPU with ENV, waits until it prints
#                        "listening on http://ADDR", leaves ADDR in REPLY (exits on failure)
#   start_nginx CPU UPSTREAM [ANSWER]
#                        nginx (one worker on CPU, upstream keep-alive, access log off) in front
#                        of UPSTREAM, or answering every request with ANSWER; sets NGINX_PID and
#                        NGINX_ADDR (exits on failure); with NGINX_WRAP (an array, e.g. valgrind
#                        and its options) set, one process serving alone, run under that command
#   ticks PID            user+sys CPU ticks of a process so far (divide by CLK_TCK)
#   bench_postgres       the PostgreSQL LAYER_TEST_DATABASE_URL names, or a throwaway one started
#                        with scripts/pg-server (fsync off) and stopped when the script exits
#                        (standalone: sets its own EXIT trap, so call it without bench_setup)
#   seed_vectors ADDR NS ROWS DIMS
#                        upserts ROWS rows (ids 0..ROWS-1, DIMS-dim vectors, cosine distance) into
#                        NS through ADDR, in batches of 1000 (exits on failure)
#   query_vector DIMS    a query vector of DIMS numbers as embedding clients print them (signs
#                        mixed, 17 significant digits, magnitudes ~1/sqrt(DIMS)), the same every
#                        run: what scenarios' `${vector}` takes (`query-ann-vector`)
#   updating_write GW NS ID DIMS / updating_watermark GW NS / updating_indexer EMU NS true|false /
#   updating_seen EMU CMD...
#                        P1's namespace kept updating (below): a row through a gateway, the wait
#                        for its watermark, the emulator's indexer paused or resumed, and the check
#                        that queries sent by CMD carry the stable-read predicate (each returns 1
#                        on failure)
#
# Everything listens on 127.0.0.1 and is killed by PID when the script exits.

seed_vectors() {
  local addr=$1 ns=$2 rows=$3 dims=$4 s
  for ((s = 0; s < rows; s += 1000)); do
    jq -cn --argjson s "$s" --argjson n "$rows" --argjson dims "$dims" \
      '{upsert_rows: [range($s; [$s + 1000, $n] | min) | {id: ., vector: [range($dims) as $d | ((. * 31 + $d) % 97) / 97]}], distance_metric: "cosine_distance"}' \
      | curl -sf -H "Authorization: Bearer $KEY" -H "content-type: application/json" --data-binary @- "http://$addr/v2/namespaces/$ns" >/dev/null ||
      { log "seeding $ns through $addr failed"; exit 1; }
  done
}

query_vector() {
  awk -v dims="$1" 'BEGIN { srand(7); printf "["; for (d = 0; d < dims; d++) printf "%s%.17g", (d ? "," : ""), (rand() * 2 - 1) / sqrt(dims); printf "]" }'
}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

bench_setup() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/layer/target}
  BIN=$CARGO_TARGET_DIR/release
  KEY=bench-$RANDOM$RANDOM
  CLK_TCK=$(getconf CLK_TCK)
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/layer-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}

bench_build() {
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries: $*"
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    (cd "$ROOT" && cargo build --release -q "${args[@]}")
  fi
}

start() {
  local name=$1 cpu=$2
  shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" taskset -c "$cpu" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS+=($!)
  for _ in $(seq 200); do
    grep -q "listening on" "$TMP/$name.out" 2>/dev/null && break
    sleep 0.05
  done
  REPLY=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$TMP/$name.out" | head -1)
  [[ -n $REPLY ]] || { log "$name did not start: $(cat "$TMP/$name.err")"; exit 1; }
}

# start_nginx CPU UPSTREAM [ANSWER]: nginx with one worker on CPU, proxying to UPSTREAM
# (host:port) with upstream keep-alive, access log off; sets NGINX_PID (the master) and
# NGINX_ADDR. With ANSWER, nginx is a trivial upstream instead: every request gets 200 and ANSWER
# (UPSTREAM is not used). ANSWER goes into a single-quoted nginx string, which expands `$name`
# and backslash escapes: it must hold no `'`, `$` or `\`. With the array NGINX_WRAP set, nginx
# runs as `NGINX_WRAP... nginx` without its master process (the one process serves, so a tool
# such as callgrind sees the requests), and the start-up wait is 30 s instead of 5.
start_nginx() {
  local cpu=$1 upstream=$2 answer=${3:-} ok serve globals='daemon off;' waits=50
  if [[ -n ${NGINX_WRAP+x} ]]; then
    globals='daemon off; master_process off;'
    waits=300
  fi
  if [[ -n $answer ]]; then
    serve="default_type application/json; return 200 '$answer';"
    upstream=127.0.0.1:9 # unused: the upstream block needs a server
  else
    serve='proxy_pass http://emulator; proxy_http_version 1.1; proxy_set_header Connection "";'
  fi
  mkdir -p "$TMP/nginx/body" "$TMP/nginx/proxy" "$TMP/nginx/logs"
  # Started as root, nginx runs its worker as `nobody`, which must reach its temp directories.
  [[ $(id -u) != 0 ]] || chmod 711 "$TMP" "$TMP/nginx"
  NGINX_PID=
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    NGINX_PORT=$((20000 + RANDOM % 40000))
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  client_max_body_size 64m;
  # Bodies up to 1 MiB stay in memory: the 8 KiB default writes a larger one to a temp file
  # (a 1536-dimension query is ~33 KB), work the gateway does not do.
  client_body_buffer_size 1m;
  keepalive_requests 1000000;
  upstream emulator {
    server $upstream;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { $serve }
  }
}
EOF
    taskset -c "$cpu" ${NGINX_WRAP+"${NGINX_WRAP[@]}"} nginx -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" \
      -c "$TMP/nginx/nginx.conf" -g "$globals" >"$TMP/nginx.out" 2>"$TMP/nginx.err" &
    NGINX_PID=$!
    ok=0
    for _ in $(seq 1 "$waits"); do
      if curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"; then
        ok=1
        break
      fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.1
    done
    if ((ok)); then
      PIDS+=("$NGINX_PID")
      break
    fi
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=
  done
  [[ -n $NGINX_PID ]] || { log "nginx did not start: $(cat "$TMP/nginx.err" "$TMP/nginx/logs/error.log" 2>/dev/null)"; exit 1; }
  NGINX_ADDR=127.0.0.1:$NGINX_PORT
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

bench_postgres() {
  [ -n "${LAYER_TEST_DATABASE_URL:-}" ] && return 0
  local pg_env
  pg_env=$("$ROOT/scripts/pg-server")
  eval "$pg_env"
  bench_stop_postgres() {
    kill -INT "$LAYER_TEST_PG_PID" 2>/dev/null || true
    for _ in $(seq 100); do
      [ -f "$LAYER_TEST_PG_DIR/data/postmaster.pid" ] || break
      sleep 0.1
    done
    [ -f "$LAYER_TEST_PG_DIR/data/postmaster.pid" ] || rm -rf "$LAYER_TEST_PG_DIR"
  }
  trap bench_stop_postgres EXIT
}

# A namespace kept updating, so that a gateway splices its stable-read predicate into every query
# (issue 17's P1 case; `compare.sh` and `callgrind.sh` with UPDATING=1). A gateway holds a
# watermark only for writes it stamped itself, and without one it sends no predicate: so each
# gateway build first writes a row of its own (the namespace then carries the stamp attribute)
# and waits for its watermark; then the emulator's indexer is paused for the namespace and one
# more row is written through each build, so the namespace holds unindexed writes throughout.
# KEY is the bearer (bench_setup).
UPDATING_QUERY='{"filters":["id","Eq",1],"rank_by":["id","asc"],"top_k":1,"include_attributes":["id"]}'

# updating_write GW NS ID DIMS: upserts row ID (a DIMS-dim vector) through the gateway at GW.
updating_write() {
  local vec
  vec=$(seq -s, 1 "$4" | sed 's/[0-9]\+/0.5/g')
  curl -sf -X POST "http://$1/v2/namespaces/$2" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "{\"upsert_rows\":[{\"id\":$3,\"vector\":[$vec]}]}" >/dev/null
}

# updating_watermark GW NS: waits (up to 60 s: callgrind slows a gateway ~50x) until queries
# through GW carry x-layer-stable-as-of, i.e. the gateway holds a watermark for NS.
updating_watermark() {
  local head
  for _ in $(seq 300); do
    # Read whole before grep: `grep -q` quitting early must not fail curl under pipefail.
    head=$(curl -sf -D - -o /dev/null -X POST "http://$1/v2/namespaces/$2/query" -H "Authorization: Bearer $KEY" \
      -H 'Content-Type: application/json' --data-binary "$UPDATING_QUERY" || true)
    grep -qi '^x-layer-stable-as-of' <<<"$head" && return 0
    sleep 0.2
  done
  return 1
}

# updating_indexer EMU NS true|false: pauses or resumes the emulator's indexer for NS.
updating_indexer() {
  curl -sf -X POST "http://$1/_emu/indexer" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "{\"namespace\":\"$2\",\"paused\":$3}" >/dev/null
}

# updating_seen EMU CMD...: runs CMD (which sends queries through one gateway) until the
# emulator's request log shows the stable-read predicate in what it received (up to 60 s).
updating_seen() {
  local emu=$1 seen
  shift
  for _ in $(seq 300); do
    curl -sf -X DELETE -H "Authorization: Bearer $KEY" "http://$emu/_emu/requests" >/dev/null
    "$@" || true
    seen=$(curl -sf -H "Authorization: Bearer $KEY" "http://$emu/_emu/requests?limit=20" || true)
    grep -q '_hevlayer_upserted_at' <<<"$seen" && return 0
    sleep 0.2
  done
  return 1
}
