#!/usr/bin/env python3
"""Rounds of `bench/cpu-split.sh` for two gateway builds, summarised (`bench/cpu-ab.sh`).

The input is the concatenated output of cpu-split runs, each preceded by a marker line
`== <label> round <n>` that cpu-ab.sh prints. From each run it takes the two `**all**` rows
(the gateway's and nginx's whole-process user and kernel µs per request, and the gateway's
sleeps per request) and prints one table of every round and one of medians per build: user,
kernel, total, nginx's total in the same run, the gateway/nginx ratio (the median of the
per-round ratios and their range) and sleeps per request. The ratio is taken within each run
because the machine drifts between runs (nginx itself moves by several µs per request).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass

MARKER = re.compile(r"^== (?P<label>\S+) round (?P<round>\d+)\s*$")
ALL_ROW = re.compile(
    r"^\| (?P<proxy>gateway|nginx) \| \*\*all\*\* \(\d+ responses\) \| \*\*(?P<user>[\d.]+)\*\* "
    r"\| \*\*(?P<kernel>[\d.]+)\*\* \| \*\*(?P<sleeps>[\d.]+)\*\* \|"
)


@dataclass
class Run:
    label: str
    round: int
    user: float
    kernel: float
    sleeps: float
    nginx: float  # nginx's user + kernel µs per request in the same run

    @property
    def total(self) -> float:
        return self.user + self.kernel

    @property
    def ratio(self) -> float:
        return self.total / self.nginx


def parse(text: str) -> list[Run]:
    """Every marked run with both rows; a run missing either row is an error."""
    runs: list[Run] = []
    current: tuple[str, int] | None = None
    rows: dict[str, re.Match[str]] = {}

    def close() -> None:
        if current is None:
            return
        missing = [p for p in ("gateway", "nginx") if p not in rows]
        if missing:
            raise ValueError(f"{current[0]} round {current[1]}: no {' or '.join(missing)} row")
        g, n = rows["gateway"], rows["nginx"]
        runs.append(
            Run(
                label=current[0],
                round=current[1],
                user=float(g["user"]),
                kernel=float(g["kernel"]),
                sleeps=float(g["sleeps"]),
                nginx=float(n["user"]) + float(n["kernel"]),
            )
        )

    for line in text.splitlines():
        if m := MARKER.match(line):
            close()
            current, rows = (m["label"], int(m["round"])), {}
        elif (m := ALL_ROW.match(line)) and current is not None:
            rows[m["proxy"]] = m
    close()
    return runs


def report(runs: list[Run]) -> str:
    labels = list(dict.fromkeys(r.label for r in runs))
    out = [
        "| round | build | user | kernel | total | nginx | ratio | sleeps/req |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(runs, key=lambda r: (r.round, labels.index(r.label))):
        out.append(
            f"| {r.round} | {r.label} | {r.user:.1f} | {r.kernel:.1f} | {r.total:.1f} "
            f"| {r.nginx:.1f} | {r.ratio:.3f} | {r.sleeps:.3f} |"
        )
    out += [
        "",
        "Medians (µs per request, whole process; ratio: the per-round ratios' median and range):",
        "",
        "| build | rounds | user | kernel | total | nginx | ratio | sleeps/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    med = statistics.median
    for label in labels:
        mine = [r for r in runs if r.label == label]
        ratios = [r.ratio for r in mine]
        out.append(
            f"| {label} | {len(mine)} | {med(r.user for r in mine):.1f} "
            f"| {med(r.kernel for r in mine):.1f} | {med(r.total for r in mine):.1f} "
            f"| {med(r.nginx for r in mine):.1f} | {med(ratios):.3f} "
            f"({min(ratios):.2f}–{max(ratios):.2f}) | {med(r.sleeps for r in mine):.3f} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", help="cpu-split output with '== <label> round <n>' markers")
    args = ap.parse_args()
    with open(args.log, encoding="utf-8") as f:
        runs = parse(f.read())
    if not runs:
        print("no marked cpu-split runs in the log", file=sys.stderr)
        return 1
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
