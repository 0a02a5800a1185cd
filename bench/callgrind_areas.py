#!/usr/bin/env python3
"""Instructions per request by area, from one callgrind dump of layer-gateway.

    bench/callgrind_areas.py DUMP REQUESTS [--top N]

Used by bench/profile.sh; runs on any dump that `bench/callgrind.sh` keeps (KEEP_DUMPS).

Every function's own (self) instructions go to one area:
- a function whose name matches a rule in AREAS belongs to that area;
- any other function (memcpy, httparse, `http` types, `bytes`, core library code shared by
  every area) is charged to the areas of its callers, in proportion to the instructions each
  caller's calls into it cost (callgrind's inclusive cost per call edge), and so on up the call
  graph until a caller with an area is found. So `httparse` under the HTTP server counts as the
  HTTP server and under the gateway's own upstream client as the upstream client.
- what reaches a thread's entry point without meeting a rule is `other`; the largest of those
  functions are listed with `--top`, so a missing rule is visible, not silently absorbed.

The areas follow issue 17's list: JSON, allocator, HTTP server (the shard's own HTTP/1.1 server,
`core::h1_server`, and hyper's, which serves what it hands over), upstream client, routing and
auth, metrics; plus the features on the query path (query validation and planning, search
history, cache), the async runtime and the system-call wrappers (the user-space side of
syscalls; the kernel's own time is not in a callgrind dump). JSON is also split by the area it
was spent for (the same walk up the call graph, with JSON functions treated as shared code).

SHA-256 (`sha2`) is shared code: on a query it is the bearer token's hash (`Auth::principal_of`),
so it counts as routing and auth. Valgrind offers no SHA instructions, so under callgrind the
software path runs (~3.4k instructions per admitted request, one block); natively `sha2` uses
the CPU's SHA extensions where it has them (the bench VMs do), and a native profile
(`PERF=1 bench/cpu-split.sh`) does not list it among its top 80 functions.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict

# First match wins; matched against the demangled function name.
AREAS: list[tuple[str, re.Pattern[str]]] = [
    (
        "allocator",
        re.compile(
            r"^(_?mi_|__rust_(alloc|dealloc|realloc|alloc_zeroed)|__rdl_|__rg_|malloc|free|realloc|calloc|cfree"
            r"|_int_(malloc|free|realloc)|tcache_|alloc::raw_vec::|<mimalloc::|alloc::alloc::)"
        ),
    ),
    ("JSON", re.compile(r"(sonic_rs::|serde_json::|simd_json::|^<?scatter::(validate|raw|json|splice|text)|faststr::)")),
    (
        "HTTP server",
        re.compile(
            r"(layer_gateway::core::h1_server\b|hyper::proto::h1::role::Server|hyper::server::|hyper_util::server::|hyper::proto::h1::dispatch::Server"
            r"|hyper::proto::h1::(conn|dispatch|io|decode|encode)::|hyper::proto::h1::role::|hyper::body::|hyper::common::"
            r"|hyper::rt::|hyper_util::rt::|hyper::service::|hyper::upgrade::|hyper::headers::|hyper::proto::)"
        ),
    ),
    (
        "upstream client",
        re.compile(r"layer_gateway::core::(h1|upstream|upstreams|pool|proxy)\b"),
    ),
    (
        "routing and auth",
        re.compile(
            r"layer_gateway::core::(router|auth|principal|service|runtime|params|fields|layout|federation|indexes|touches)\b"
            r"|layer_gateway::app::|layer_gateway::routes"
        ),
    ),
    (
        "metrics",
        re.compile(r"layer_gateway::core::(metrics|labeled|tier_metrics|usage)\b|layer_gateway::features::metrics|^<?metrics_catalog::"),
    ),
    ("search history", re.compile(r"layer_gateway::features::history|layer_gateway::core::record\b")),
    ("query validation and planning", re.compile(r"layer_gateway::features::(query|stable)|layer_gateway::core::stable\b|^<?scatter::")),
    ("cache", re.compile(r"^<?cache::|layer_gateway::core::(cache|tier_runtime)\b|layer_gateway::features::(cache|fetch)")),
    ("async runtime", re.compile(r"(^|<)tokio::|futures_(util|core|channel)::|mio::")),
    (
        "syscall wrappers",
        re.compile(r"^(__libc_|__GI___|epoll_wait|writev|__writev|recv|recvfrom|send|sendto|read|write|__vdso|clock_gettime|syscall)"),
    ),
    ("other gateway code", re.compile(r"layer_gateway::")),
    # nginx, when bench/callgrind.sh profiles it for scale (NGINX=1): its named functions.
    ("nginx", re.compile(r"^ngx_")),
]

NAME = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")


def area_of(name: str) -> str | None:
    for area, rule in AREAS:
        if rule.search(name):
            return area
    return None


def parse(path: str):
    """Self cost per function id, inclusive cost per (caller, callee) edge, names by id."""
    names: dict[str, str] = {}
    self_cost: dict[str, int] = defaultdict(int)
    edges: dict[tuple[str, str], int] = defaultdict(int)
    fn = cfn = None
    in_call = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            m = NAME.match(line)
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[ident] = name
                if kind == "fn":
                    fn = ident
                else:
                    cfn = ident
                continue
            if line.startswith("calls="):
                in_call = True
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            if len(parts) < 2 or fn is None:
                in_call = False
                continue
            cost = int(parts[1])
            if in_call and cfn is not None:
                edges[(fn, cfn)] += cost
                in_call = False
            else:
                self_cost[fn] += cost
    return names, self_cost, edges


def attribute(names, self_cost, edges, through: frozenset[str] = frozenset()):
    """Self instructions by area, and the unattributed (`other`) functions by cost. Functions
    of an area in `through` are treated like shared code: charged to their callers' areas."""
    callers: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (caller, callee), cost in edges.items():
        if caller != callee and cost > 0:
            callers[callee].append((caller, cost))
    memo: dict[str, dict[str, float]] = {}
    busy: set[str] = set()

    def shares(fid: str) -> dict[str, float]:
        """How one instruction of `fid` splits over areas."""
        if fid in memo:
            return memo[fid]
        own = area_of(names.get(fid, ""))
        if own is not None and own not in through:
            memo[fid] = {own: 1.0}
            return memo[fid]
        if fid in busy or not callers.get(fid):
            return {"other": 1.0}
        busy.add(fid)
        total = sum(c for _, c in callers[fid])
        out: dict[str, float] = defaultdict(float)
        for caller, cost in callers[fid]:
            for area, share in shares(caller).items():
                out[area] += share * cost / total
        busy.discard(fid)
        memo[fid] = dict(out)
        return memo[fid]

    by_area: dict[str, float] = defaultdict(float)
    unattributed: dict[str, float] = defaultdict(float)
    for fid, cost in self_cost.items():
        if through and area_of(names.get(fid, "")) not in through:
            continue
        for area, share in shares(fid).items():
            by_area[area] += cost * share
            if area == "other":
                unattributed[names.get(fid, fid)] += cost * share
    return by_area, unattributed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("requests", type=int)
    ap.add_argument("--top", type=int, default=0, help="also list the N largest unattributed functions")
    args = ap.parse_args()
    if args.requests <= 0:
        print("requests must be positive", file=sys.stderr)
        return 2
    names, self_cost, edges = parse(args.dump)
    by_area, unattributed = attribute(names, self_cost, edges)
    total = sum(by_area.values())
    if total == 0:
        print(f"{args.dump}: no instructions recorded", file=sys.stderr)
        return 1
    # JSON is a means, not a purpose: say which areas its instructions were spent for.
    json_for, _ = attribute(names, self_cost, edges, through=frozenset({"JSON"}))
    print("| area | instructions / request | share |")
    print("|---|---:|---:|")
    for area, cost in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"| {area} | {cost / args.requests / 1000:.1f}k | {100 * cost / total:.1f}% |")
        if area == "JSON":
            for user, part in sorted(json_for.items(), key=lambda kv: -kv[1]):
                if part / args.requests >= 50:
                    print(f"| — JSON for {user} | {part / args.requests / 1000:.1f}k | |")
    print(f"| **all** | **{total / args.requests / 1000:.1f}k** | 100% |")
    if args.top:
        print()
        print(f"Largest unattributed (`other`) functions, instructions / request (top {args.top}):")
        print()
        for name, cost in sorted(unattributed.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"- {cost / args.requests:.0f} `{name[:140]}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
