#!/usr/bin/env python3
"""bench/dashboard.py — the dashboard's server time per view and its first paint, with N
namespaces (1,000 by default).

Starts turbopuffer-emulator, layer-gateway (`LAYER_METRICS_URL` passed through when set) and
layer-dashboard on 127.0.0.1, writes one row to each of N namespaces through the gateway, then for
every tab: the median and max of `Server-Timing: render;dur` over ROUNDS plain GETs, and in
headless Chromium (Debian chromium + chromedriver) the first-contentful-paint and the DOM's
load event of a fresh navigation. Writes bench/results/<date>-dashboard.md.

Usage: ~/.cache/layer/venv/bin/python bench/dashboard.py   (knobs: NAMESPACES=1000 ROUNDS=5)
Needs the binaries built: cargo build --workspace --bins.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/layer/target")
KEY = "bench-key"
USER, PASSWORD = "ops", "bench-pw"
N = int(os.environ.get("NAMESPACES", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
VIEWS = ["/", "/namespaces", "/pipelines", "/udfs", "/keys", "/observe", "/cluster", "/cost"]


def start(name: str, argv: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert p.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return p, m.group(1).rstrip("/")
    raise SystemExit(f"{name} did not start (log {log.name})")


def main() -> None:
    procs = []
    try:
        emu, emu_url = start("emulator", [f"{TARGET}/debug/turbopuffer-emulator", "--listen", "127.0.0.1:0", "--api-key", KEY])
        procs.append(emu)
        gw, gw_url = start(
            "gateway",
            [f"{TARGET}/debug/layer-gateway", "--listen", "127.0.0.1:0", "--upstream-url", emu_url,
             "--upstream-api-key", KEY, "--data-dir", tempfile.mkdtemp(prefix="bench-dash-")],
        )
        procs.append(gw)
        # With a VictoriaMetrics from scripts/vm-server (LAYER_METRICS_URL=$LAYER_TEST_VM_URL and
        # LAYER_TEST_VM_TARGETS), it scrapes this gateway, so the observe tab plots real series.
        targets = os.environ.get("LAYER_TEST_VM_TARGETS")
        if targets:
            with open(os.path.join(targets, "bench-dashboard.json"), "w") as f:
                json.dump([{"targets": [gw_url.removeprefix("http://")], "labels": {"run": "bench-dashboard"}}], f)
        env = dict(os.environ, LAYER_GATEWAY_API_KEY=KEY, LAYER_DASHBOARD_USER=USER, LAYER_DASHBOARD_PASSWORD=PASSWORD)
        dash, dash_url = start(
            "dashboard",
            [f"{TARGET}/debug/layer-dashboard", "--listen", "127.0.0.1:0", "--gateway-url", gw_url, "--refresh-seconds", "0"],
            env,
        )
        procs.append(dash)
        auth = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=gw_url, headers=auth, timeout=30) as c:
            t0 = time.monotonic()
            for i in range(N):
                c.post(f"/v2/namespaces/bench-dash-{i:04d}", json={"upsert_rows": [{"id": 1, "a": i}]}).raise_for_status()
            seeded = time.monotonic() - t0
        server: dict[str, list[float]] = {v: [] for v in VIEWS}
        wall: dict[str, list[float]] = {v: [] for v in VIEWS}
        with httpx.Client(base_url=dash_url, auth=(USER, PASSWORD), timeout=60) as d:
            for _ in range(ROUNDS):
                for v in VIEWS:
                    t = time.monotonic()
                    r = d.get(v)
                    wall[v].append((time.monotonic() - t) * 1000)
                    r.raise_for_status()
                    server[v].append(float(re.search(r"dur=([0-9.]+)", r.headers["server-timing"]).group(1)))
        paint = first_paint(dash_url)
        rows = []
        for v in VIEWS:
            rows.append(
                f"| `{v}` | {statistics.median(server[v]):.1f} | {max(server[v]):.1f} | {statistics.median(wall[v]):.1f} | "
                f"{paint.get(v, ('–', '–'))[0]} | {paint.get(v, ('–', '–'))[1]} |"
            )
        date = datetime.date.today().isoformat()
        out = os.path.join(ROOT, "bench", "results", f"{date}-dashboard.md")
        with open(out, "w") as f:
            f.write(
                f"# Dashboard: server time and first paint with {N} namespaces ({date})\n\n"
                f"`bench/dashboard.py` (NAMESPACES={N}, ROUNDS={ROUNDS}); emulator, gateway and dashboard on one "
                f"{os.cpu_count()}-core machine (debug builds, as the tests run them; other work was running). "
                f"{N} namespaces seeded through the gateway in {seeded:.1f} s. Server time is the dashboard's own "
                "`Server-Timing: render;dur` (gateway reads included); wall is the client-side GET; first paint is "
                "Chromium's first-contentful-paint of a fresh navigation, load its load event end. "
                f"VictoriaMetrics behind the metrics proxy: {'yes (scraping the gateway)' if targets else 'no'}.\n\n"
                "| view | server ms (median) | server ms (max) | wall ms (median) | first paint ms | load ms |\n"
                "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
            )
        print(open(out).read())
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=10)


def first_paint(dash_url: str) -> dict[str, tuple[str, str]]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return {}
    if not os.path.exists("/usr/bin/chromedriver"):
        return {}
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
    out = {}
    try:
        for v in VIEWS:
            driver.get(dash_url + v)
            fcp = driver.execute_script(
                "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null;"
            )
            load = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return n ? n.loadEventEnd : null;")
            out[v] = (f"{fcp:.0f}" if fcp is not None else "–", f"{load:.0f}" if load is not None else "–")
    finally:
        driver.quit()
    return out


if __name__ == "__main__":
    sys.exit(main())
