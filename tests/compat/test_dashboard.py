"""The operator dashboard (``layer-dashboard``) in headless Chromium, against the running gateway
and emulator of the session (and PostgreSQL for the UDF tab).

Covers: the binary refuses to start without basic-auth credentials; every route answers 401
without them; each tab renders with live data (a namespace written here, a UDF created here, the
gateway's health), a chart has plotted points (the observe tab, through the gateway's metrics
proxy to VictoriaMetrics), UDF pause and resume round-trip through the confirm step, and no
request the page makes leaves 127.0.0.1. Screenshots of every tab go to
``$CARGO_TARGET_DIR/dashboard-screenshots/`` for a person to look at.

Needs ``LAYER_DASHBOARD_BIN`` (default ``$CARGO_TARGET_DIR/debug/layer-dashboard``), Chromium and
chromedriver (``scripts/test`` installs the Debian packages); skips without them, except under
CI, where a missing browser fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid
from urllib.parse import urlparse

import httpx
import pytest
from hevlayer import AsyncHevlayer
from hevlayer.models import CreateUdfRequest, UdfSpec, UdfWorkerSpec

from compat_helpers import API_KEY, fresh
from conftest import _default_target_dir, _Server

USER, PASSWORD = "ops", "compat-dashboard-pw"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def dashboard_bin() -> str:
    return os.environ.get("LAYER_DASHBOARD_BIN") or os.path.join(_default_target_dir(), "debug", "layer-dashboard")


def need(path: str, what: str) -> None:
    if not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} missing under CI ({path}): scripts/test installs it")
        pytest.skip(f"{what} not installed ({path})")


@pytest.fixture
def dashboard(layer):
    need(dashboard_bin(), "layer-dashboard")
    env = dict(os.environ)
    env.update(
        {
            "LAYER_GATEWAY_API_KEY": API_KEY,
            "LAYER_DASHBOARD_USER": USER,
            "LAYER_DASHBOARD_PASSWORD": PASSWORD,
        }
    )
    server = _Server(
        "layer-dashboard",
        [dashboard_bin(), "--listen", "127.0.0.1:0", "--gateway-url", layer.api_url, "--write-access", "--refresh-seconds", "0"],
        env=env,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser():
    need(CHROMIUM, "chromium")
    need(CHROMEDRIVER, "chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {auth}"}})
    yield driver
    driver.quit()


def shots_dir() -> str:
    d = os.path.join(_default_target_dir(), "dashboard-screenshots")
    os.makedirs(d, exist_ok=True)
    return d


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_refuses_to_start_without_basic_auth(layer):
    need(dashboard_bin(), "layer-dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAYER_DASHBOARD_")}
    env["LAYER_GATEWAY_API_KEY"] = API_KEY
    out = subprocess.run(
        [dashboard_bin(), "--listen", "127.0.0.1:0", "--gateway-url", layer.api_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode != 0
    assert "basic auth is required" in out.stderr


def test_every_route_needs_basic_auth(dashboard):
    for path in ["/", "/namespaces", "/udfs", "/observe", "/nope"]:
        r = httpx.get(dashboard.url + path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Basic ")
        bad = httpx.get(dashboard.url + path, auth=(USER, "wrong"))
        assert bad.status_code == 401
    ok = httpx.get(dashboard.url + "/", auth=(USER, PASSWORD))
    assert ok.status_code == 200 and "server-timing" in ok.headers


def test_views_render_live_data_and_pause_resume_round_trips(dashboard, browser, pipelines):
    from selenium.webdriver.common.by import By

    ns = fresh("dash")
    udf = fresh("dash-udf")
    pipeline = fresh("dash-pipe")

    async def setup():
        async with AsyncHevlayer(api_key=API_KEY, base_url=pipelines.api_url) as c:
            await c.write_namespace(ns, {"upsert_rows": [{"id": i, "title": f"t{i}"} for i in range(12)]})
            await c.create_pipeline({"id": pipeline, "target_namespace": ns + "-vectors"})
            await c.create_udf(
                CreateUdfRequest(id=udf, spec=UdfSpec(target_namespaces=[ns], inputs=["title"], worker=UdfWorkerSpec()))
            )

    asyncio.run(setup())
    base = dashboard.url
    shots = shots_dir()
    for path, title in [
        ("/", "Overview"),
        ("/namespaces", "Namespaces"),
        ("/pipelines", "Pipelines"),
        ("/udfs", "UDFs"),
        ("/keys", "Keys"),
        ("/observe", "Observe"),
        ("/cluster", "Cluster"),
        ("/cost", "Cost"),
    ]:
        browser.get(base + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == title, path
        browser.save_screenshot(os.path.join(shots, f"{title.lower()}.png"))
        if path == "/":
            cards = browser.find_element(By.CLASS_NAME, "cards").text
            assert "Status" in cards and "Cache tier" in cards
        if path == "/namespaces":
            assert ns in browser.page_source
        if path == "/pipelines":
            assert pipeline in browser.page_source
        if path == "/udfs":
            assert udf in browser.page_source
            assert "pending" in browser.page_source
        if path == "/cluster":
            assert "not configured" in browser.page_source

    # Pause through the confirm step, then resume.
    from selenium.webdriver.support.ui import WebDriverWait

    for verb, paused in (("pause", True), ("resume", False)):
        browser.get(base + "/udfs")
        browser.find_element(By.ID, f"{verb}-{udf}").click()
        # The link's navigation to the confirm page: wait for it (the old page's h1 may still be
        # there for a moment).
        try:
            WebDriverWait(browser, 15).until(
                lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Confirm")
            )
        except Exception:
            pytest.fail(f"{verb} did not show its confirm page: {browser.current_url}")
        browser.find_element(By.ID, "confirm").click()
        # The click starts the POST and its 303 to /udfs; wait for that navigation to finish.
        try:
            WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").endswith("/udfs"))
        except Exception:
            pytest.fail(f"{verb} did not return to /udfs: {browser.current_url} {browser.find_element(By.TAG_NAME, 'main').text}")

        async def state():
            async with AsyncHevlayer(api_key=API_KEY, base_url=pipelines.api_url) as c:
                return (await c.get_udf(udf)).udf.paused

        assert asyncio.run(state()) is paused, verb

    leaving = [u for u in requested_urls(browser) if not u.startswith("http://127.0.0.1") and not u.startswith("data:")]
    assert leaving == [], f"requests left 127.0.0.1: {leaving}"


def test_observe_plots_points_from_the_metrics_proxy(dashboard, browser, layer):
    from selenium.webdriver.common.by import By

    vm, targets = os.environ.get("LAYER_TEST_VM_URL"), os.environ.get("LAYER_TEST_VM_TARGETS")
    if not vm or not targets:
        if os.environ.get("CI") == "true":
            pytest.fail("LAYER_TEST_VM_URL is unset under CI: scripts/test starts VictoriaMetrics")
        pytest.skip("no VictoriaMetrics (LAYER_TEST_VM_URL unset)")
    # VictoriaMetrics scrapes this session's gateway (a target labelled with this run), so the
    # points plotted come from the gateway the test drives, not from earlier suites' gateways.
    run = f"dash{uuid.uuid4().hex[:10]}"
    target = os.path.join(targets, f"{run}.json")
    with open(target + ".tmp", "w") as f:
        json.dump([{"targets": [urlparse(layer.api_url).netloc], "labels": {"run": run}}], f)
    os.rename(target + ".tmp", target)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        ns = fresh("dash-observe")
        httpx.post(
            f"{layer.api_url}/v2/namespaces/{ns}", headers=headers, json={"upsert_rows": [{"id": 1, "a": 1}]}
        ).raise_for_status()
        deadline = time.monotonic() + 60
        while True:
            # The gateway's own request counter, from this run's scrapes, through the gateway.
            r = httpx.get(
                f"{layer.api_url}/v2/metrics/api/v1/query",
                headers=headers,
                params={"query": f'sum(layer_requests_total{{run="{run}"}})'},
            )
            if r.status_code == 200 and r.json()["data"]["result"]:
                break
            assert time.monotonic() < deadline, f"VictoriaMetrics never scraped the gateway: {r.text}"
            time.sleep(1)
        # Rates need two samples in their window: poll the tab until its charts have points.
        while True:
            browser.get(dashboard.url + "/observe?family=query")
            points = [p for p in browser.find_elements(By.CSS_SELECTOR, "polyline.series") if p.get_attribute("points")]
            if points:
                break
            assert time.monotonic() < deadline, "the observe tab never plotted a point"
            time.sleep(2)
        browser.save_screenshot(os.path.join(shots_dir(), "observe-points.png"))
        assert len(points[0].get_attribute("points").split()) >= 1
    finally:
        os.remove(target)
