"""bench/cpu_ab_summary.py on hand-written cpu-split output (the rows cpu-split.sh prints)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import cpu_ab_summary as cas  # noqa: E402


def run(label: str, rnd: int, user: float, kernel: float, sleeps: float, nginx: tuple[float, float]) -> str:
    """One cpu-split run as cpu-ab.sh logs it: the marker, a per-thread row, both `all` rows."""
    return f"""== {label} round {rnd}
| proxy | thread | user µs/req | kernel µs/req | sleeps/req | preempted/req |
|---|---|---:|---:|---:|---:|
| gateway | layer-shard-0 | {user - 1:.1f} | {kernel:.1f} | {sleeps:.3f} | 0.002 |
| gateway | **all** (70000 responses) | **{user:.1f}** | **{kernel:.1f}** | **{sleeps:.3f}** | **0.007** |
| nginx | nginx | {nginx[0]:.1f} | {nginx[1]:.1f} | 1.800 | 0.001 |
| nginx | **all** (71000 responses) | **{nginx[0]:.1f}** | **{nginx[1]:.1f}** | **1.800** | **0.001** |
"""


# Build `old`: totals 46, 50, 45 against nginx 40, 48, 45 (ratios 1.15, 1.04, 1.0: their median,
# 1.04, is not the ratio of the medians, 46 / 45).
# Build `new`: totals 40, 44, 60 against nginx 40, 40, 40 (ratios 1.0, 1.1, 1.5).
LOG = "".join(
    [
        run("old", 1, 20.0, 26.0, 1.6, (10.0, 30.0)),
        run("new", 1, 15.0, 25.0, 1.7, (10.0, 30.0)),
        run("new", 2, 18.0, 26.0, 1.5, (11.0, 29.0)),
        run("old", 2, 21.0, 29.0, 1.4, (12.0, 36.0)),
        run("old", 3, 19.0, 26.0, 1.8, (12.0, 33.0)),
        run("new", 3, 30.0, 30.0, 1.9, (10.0, 30.0)),
    ]
)


def test_every_run_is_read_with_nginx_from_its_own_run():
    runs = cas.parse(LOG)
    assert [(r.label, r.round) for r in runs] == [
        ("old", 1), ("new", 1), ("new", 2), ("old", 2), ("old", 3), ("new", 3)
    ]
    old3 = runs[4]
    assert (old3.user, old3.kernel, old3.sleeps, old3.nginx) == (19.0, 26.0, 1.8, 45.0)
    assert old3.ratio == pytest.approx(1.0)


def test_medians_take_the_ratio_within_each_run():
    out = cas.report(cas.parse(LOG))
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| old") or line.startswith("| new")}
    # old: user 20, kernel 26, total 46, nginx 45, ratios 1.15/1.04/1.0 -> median 1.04.
    assert rows["old"] == "| old | 3 | 20.0 | 26.0 | 46.0 | 45.0 | 1.042 (1.00–1.15) | 1.600 |"
    # new: the ratio of medians would be 44/40 = 1.1 too, but its range shows the outlier.
    assert rows["new"] == "| new | 3 | 18.0 | 26.0 | 44.0 | 40.0 | 1.100 (1.00–1.50) | 1.700 |"
    # Every round is listed, in round order, builds in first-seen order.
    listed = [line.split("|")[1:3] for line in out.splitlines() if line.startswith("| ") and "|---" not in line]
    assert [(a.strip(), b.strip()) for a, b in listed[1:7]] == [
        ("1", "old"), ("1", "new"), ("2", "old"), ("2", "new"), ("3", "old"), ("3", "new")
    ]


def test_a_run_without_its_nginx_row_is_an_error():
    broken = LOG.replace("| nginx | **all** (71000 responses) | **12.0** | **33.0**", "| nginx | lost")
    with pytest.raises(ValueError, match="old round 3: no nginx row"):
        cas.parse(broken)


def test_the_command_line_prints_the_report_and_fails_on_an_empty_log(tmp_path):
    log = tmp_path / "log"
    log.write_text(LOG, encoding="utf-8")
    done = subprocess.run([sys.executable, str(BENCH / "cpu_ab_summary.py"), str(log)], capture_output=True, text=True)
    assert done.returncode == 0
    assert "| new | 3 | 18.0" in done.stdout
    log.write_text("nothing here\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(BENCH / "cpu_ab_summary.py"), str(log)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "no marked cpu-split runs" in done.stderr
