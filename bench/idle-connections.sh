#!/usr/bin/env bash
# bench/idle-connections.sh — normal traffic's latency while the gateway holds thousands of idle
# connections and slow-loris clients (issue: overload and slow clients), against the same traffic
# on an idle gateway, in one run:
#
#   idle      layer-loadgen, open loop at RATE req/s (the point query of query-passthrough.yaml)
#   held      the same, while a holder keeps IDLE connections open to the gateway (connected, no
#             bytes; a connection the gateway closes is reopened and counted) and LORIS clients
#             each send one header byte per second
#
# Rounds interleave (idle, held, held, idle, ...). The gateway runs at its documented defaults
# (one shard per core, gateway.server bounds and timeouts untouched). Reports p50/p99/p99.9, errors
# and unexpected statuses per phase, the ratio held/idle, the gateway's connection count while
# held, and how many idle connections it closed (its header-read timeout, 15 s by default, applies
# to a connection that never sends a request) — the holder reopens them, so the count stays up.
#
# Writes bench/results/<YYYY-MM-DD>-idle-connections.md. Knobs: IDLE (5000), LORIS (20), RATE
# (1000), DURATION (20s), WARMUP (2s), ROUNDS (2), ROWS (5000), SKIP_BUILD (0). Everything listens
# on 127.0.0.1 and stops by itself.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IDLE=${IDLE:-5000}
LORIS=${LORIS:-20}
RATE=${RATE:-1000}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
ROWS=${ROWS:-5000}
source "$ROOT/bench/lib.sh"
bench_setup idle
OUT=${OUT:-$ROOT/bench/results/$(date +%F)-idle-connections.md}
NS=bench-passthrough
# The holder's sockets and the gateway's (same machine): 2 fds per held connection.
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) >= 2 * IDLE + 1000 )) || { log "open files limit $(ulimit -n) is too low for IDLE=$IDLE"; exit 1; }

bench_build turbopuffer-emulator layer-gateway layer-loadgen

start emulator 0-1 X=1 -- "$BIN/turbopuffer-emulator" --listen 127.0.0.1:0 --api-key "$KEY" --threads 2
EMU=$REPLY
start gateway 0-1 LAYER_LOG=warn -- \
  "$BIN/layer-gateway" --listen 127.0.0.1:0 --upstream-url "http://$EMU" --upstream-api-key "$KEY" \
  --data-dir "$TMP/gw"
GW=$REPLY; GW_PID=${PIDS[-1]}
GW_PORT=${GW##*:}

auth=(-H "Authorization: Bearer $KEY" -H "content-type: application/json")
log "seeding $ROWS rows"
for ((s = 0; s < ROWS; s += 1000)); do
  jq -cn --argjson s "$s" --argjson n "$ROWS" '{upsert_rows: [range($s; [$s + 1000, $n] | min) | {id: .}]}' \
    | curl -sf "${auth[@]}" --data-binary @- "http://$GW/v2/namespaces/$NS" >/dev/null
done

# The holder: IDLE idle connections kept open (reopened when the gateway closes one) and LORIS
# slow-loris clients (one header byte per second, reconnecting when cut off), until killed.
cat >"$TMP/holder.py" <<'EOF'
import selectors, socket, sys, time
host, port, idle, loris, stats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sel = selectors.DefaultSelector()
reopened = cut_loris = 0
def connect(kind):
    s = socket.create_connection((host, port))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, [kind, 0])
    return s
for _ in range(idle):
    connect("idle")
lorises = [connect("loris") for _ in range(loris)]
head = b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 10000
last_tick = time.time()
while True:
    for key, _ in sel.select(timeout=0.2):
        s, (kind, _) = key.fileobj, key.data
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s); s.close()
            if kind == "idle":
                reopened += 1
            else:
                cut_loris += 1
                lorises = [l for l in lorises if l is not s]
                lorises.append(connect("loris"))
            if kind == "idle":
                connect("idle")
    if time.time() - last_tick >= 1:
        last_tick = time.time()
        for l in lorises:
            d = sel.get_key(l).data
            try:
                l.send(head[d[1]:d[1] + 1]); d[1] += 1
            except OSError:
                pass
        with open(stats, "w") as f:
            f.write(f"{reopened} {cut_loris}\n")
EOF

gw_conns() {
  # Established connections to the gateway's port (both directions seen once: local port match).
  awk -v p="$(printf '%04X' "$GW_PORT")" 'NR > 1 { split($2, a, ":"); if (a[2] == p && $4 == "01") n++ } END { print n + 0 }' /proc/net/tcp
}

RAW=$TMP/raw.tsv
run_phase() { # phase round
  local phase=$1 round=$2 holder=""
  if [[ $phase == held ]]; then
    python3 "$TMP/holder.py" 127.0.0.1 "$GW_PORT" "$IDLE" "$LORIS" "$TMP/holder.stats" &
    holder=$!
    for _ in $(seq 600); do
      (( $(gw_conns) >= IDLE )) && break
      sleep 0.1
    done
  fi
  local conns
  conns=$(gw_conns)
  "$BIN/layer-loadgen" --scenario "$ROOT/bench/scenarios/query-passthrough.yaml" \
    --target "http://$GW" --var "ns=$NS" --var "api_key=$KEY" --rate "$RATE" --connections 64 \
    --warmup "$WARMUP" --duration "$DURATION" --format json --out "$TMP/$phase-$round.json" >/dev/null 2>&1 || true
  local reopened=0 cut=0
  if [[ -n $holder ]]; then
    read -r reopened cut <"$TMP/holder.stats" || true
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    for _ in $(seq 200); do (( $(gw_conns) < 100 )) && break; sleep 0.1; done
  fi
  jq -r --arg r "$round" --arg t "$phase" --arg c "$conns" --arg ro "$reopened" --arg cut "$cut" \
    '[$r, $t, (.throughput_rps | floor), (.latency_us.p50 / 1000), (.latency_us.p99 / 1000),
      (.latency_us.p99_9 / 1000),
      (.errors.connect + .errors.io + .errors.timeout), .unexpected_status, $c, $ro, $cut] | @tsv' \
    "$TMP/$phase-$round.json" >>"$RAW"
  log "round $round $phase: $(tail -1 "$RAW")"
}

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then run_phase idle "$round"; run_phase held "$round"
  else run_phase held "$round"; run_phase idle "$round"; fi
done

med() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v t="$1" -v c="$2" '$2 == t {print $c}' "$RAW" | med; }
sum() { awk -F'\t' -v t="$1" -v c="$2" '$2 == t {s += $c} END {print s + 0}' "$RAW"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
{
  echo "# Idle connections and slow clients: normal traffic's latency, same run"
  echo
  echo "Generated by \`bench/idle-connections.sh\` on $(date -u '+%F %H:%M') UTC, commit $(git -C "$ROOT" rev-parse --short HEAD)."
  echo
  echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); nothing pinned."
  echo "- Gateway at its documented defaults (one shard per core; \`gateway.server\` bounds and timeouts untouched), emulator with 2 threads, $ROWS rows."
  echo "- Traffic: open loop at $RATE req/s (point query by id, \`query-passthrough.yaml\`), $WARMUP warm-up + $DURATION per phase, $ROUNDS interleaved rounds; medians of the rounds."
  echo "- **held**: $IDLE idle connections (connected, no bytes; reopened when the gateway closes them) and $LORIS slow-loris clients (one header byte per second)."
  echo
  echo "| phase | req/s | p50 ms | p99 ms | p99.9 ms | transport errors | unexpected statuses | gateway connections |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for t in idle held; do
    echo "| $t | $(col "$t" 3) | $(col "$t" 4) | $(col "$t" 5) | $(col "$t" 6) | $(sum "$t" 7) | $(sum "$t" 8) | $(col "$t" 9) |"
  done
  echo
  echo "held / idle: p50 $(ratio "$(col held 4)" "$(col idle 4)")×, p99 $(ratio "$(col held 5)" "$(col idle 5)")×. Idle connections the gateway closed (and the holder reopened) during the held phases: $(sum held 10); slow-loris connections cut off: $(sum held 11)."
  echo
  echo '```'
  printf 'round\tphase\treq_s\tp50_ms\tp99_ms\tp999_ms\terrors\tunexpected\tconns\treopened\tloris_cut\n'
  cat "$RAW"
  echo '```'
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
