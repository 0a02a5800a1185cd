#!/usr/bin/env bash
# bench/profile.sh [SCENARIO] [GATEWAY_BIN ...] — where a request's user-space instructions go,
# by area: JSON, allocator, HTTP server, upstream client, routing and auth, metrics, query
# planning, search history, cache, async runtime, system-call wrappers.
#
# Runs bench/callgrind.sh (same scenario, builds, DURATION and CONCURRENCY; one shard against one
# emulator, everything on 127.0.0.1) keeping each build's dump, then prints one table per build
# from bench/callgrind_areas.py: a function's own instructions go to the area its name belongs
# to; shared code (memcpy, httparse, `http` types, core library code) to the areas of its callers,
# in proportion to what each caller's calls cost. Instruction counts do not depend on machine
# load, so two builds compare in any run; the kernel's time is not counted (bench/cpu-split.sh
# measures it).
#
#   bench/profile.sh                                   # query-passthrough, this tree's release build
#   SKIP_BUILD=1 bench/profile.sh query-ann OLD NEW    # two builds side by side
#   SKIP_BUILD=1 NGINX=1 bench/profile.sh              # and nginx's instructions, for scale
#
# Knobs: everything bench/callgrind.sh takes, plus TOP (15: the largest unattributed functions
# listed under each table; a missing rule shows there) and DUMPS (keep the dumps in that
# directory; default a temporary one, removed on exit).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOP=${TOP:-15}
if [[ -n ${DUMPS:-} ]]; then
  mkdir -p "$DUMPS"
else
  DUMPS=$(mktemp -d "${TMPDIR:-/tmp}/layer-profile.XXXXXX")
  trap 'rm -rf "$DUMPS"' EXIT
fi
KEEP_DUMPS=$DUMPS "$ROOT/bench/callgrind.sh" "$@"
shopt -s nullglob
dumps=("$DUMPS"/*.callgrind)
[[ ${#dumps[@]} -gt 0 ]] || { echo "profile.sh: callgrind.sh left no dump in $DUMPS" >&2; exit 1; }
for dump in "${dumps[@]}"; do
  requests=$(<"${dump%.callgrind}.requests")
  printf '\n### %s (%s requests)\n\n' "${dump##*/}" "$requests"
  python3 "$ROOT/bench/callgrind_areas.py" "$dump" "$requests" --top "$TOP"
done
