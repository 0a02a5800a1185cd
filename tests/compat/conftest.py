"""Fixtures for the Turbopuffer compatibility suite.

The suite drives the official Python client (``turbopuffer==3.1.0``) against the
local ``turbopuffer-emulator``. One emulator is started per pytest session, which
under pytest-xdist means one per worker.

Environment:

* ``LAYER_EMULATOR_BIN``  – path of the emulator binary (default
  ``$CARGO_TARGET_DIR/debug/turbopuffer-emulator``; ``CARGO_TARGET_DIR`` defaults
  to ``~/.cache/layer/target``).
* ``LAYER_COMPAT_TARGET`` – ``emulator`` (default) or ``gateway``. With
  ``gateway`` the SDK talks to ``layer-gateway`` (``LAYER_GATEWAY_BIN``) which is
  started in front of the emulator; control routes (``/_emu/...``) still go to
  the emulator directly.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional

import httpx
import pytest
import turbopuffer

from compat_helpers import API_KEY, Emu, wait_stable

STARTUP_TIMEOUT_S = 20.0
_LISTEN_RE = re.compile(r"listening on (http://[^\s]+)")


def _default_target_dir() -> str:
    return os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/layer/target")


def emulator_bin() -> str:
    return os.environ.get("LAYER_EMULATOR_BIN") or os.path.join(
        _default_target_dir(), "debug", "turbopuffer-emulator"
    )


@dataclass
class _Server:
    """A child process that announces its URL on stdout."""

    name: str
    argv: List[str]
    proc: Optional[subprocess.Popen] = None
    url: str = ""
    log_path: str = ""
    env: Optional[dict] = None
    _stdout_lines: List[str] = field(default_factory=list)

    def start(self) -> None:
        if not os.path.isfile(self.argv[0]) or not os.access(self.argv[0], os.X_OK):
            raise RuntimeError(f"{self.name} binary not found or not executable: {self.argv[0]}")
        log = tempfile.NamedTemporaryFile(prefix=f"compat-{self.name}-", suffix=".log", delete=False)
        self.log_path = log.name
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=self.env,
        )
        found: dict = {}
        ready = threading.Event()

        def pump() -> None:
            # Keep draining stdout for the life of the process so it can never block on a full pipe.
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._stdout_lines.append(line.rstrip("\n"))
                if "url" not in found:
                    m = _LISTEN_RE.search(line)
                    if m:
                        found["url"] = m.group(1).rstrip("/")
                        ready.set()
            ready.set()

        threading.Thread(target=pump, name=f"{self.name}-stdout", daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT_S) or "url" not in found:
            code = self.proc.poll() if self.proc is not None else None
            self.stop(keep_log=True)
            why = f"exited with status {code}" if code is not None else f"timed out after {STARTUP_TIMEOUT_S}s"
            raise RuntimeError(
                f"{self.name} ({' '.join(self.argv)}) never printed 'listening on http://...': {why}; "
                f"stdout={self._stdout_lines!r}; stderr log: {self.log_path}"
            )
        self.url = found["url"]
        self._wait_accepting()

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                # Any HTTP answer (even 401/404) proves the socket is serving.
                httpx.get(self.url + "/v1/namespaces", timeout=2.0)
                return
            except httpx.HTTPError as e:  # pragma: no cover - timing dependent
                last = e
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} at {self.url} never accepted connections: {last!r}")

    def stop(self, keep_log: bool = False) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        if self.log_path and not keep_log and not os.environ.get("LAYER_COMPAT_KEEP_LOGS"):
            try:
                os.unlink(self.log_path)
            except OSError:
                pass


@dataclass
class Target:
    """Where the SDK points (``api_url``) and where control routes go (``emu``)."""

    api_url: str
    emu_url: str
    mode: str  # "emulator" | "gateway"
    emu: Emu
    # The gateway's stderr log (its tracing output), so a test can read what it logged.
    gateway_log: str = ""

    @property
    def is_gateway(self) -> bool:
        return self.mode == "gateway"

    def wait_stable(self, ns: Any, timeout: float = 20.0) -> None:
        """Through the gateway: waits until ``ns`` (a handle or a name) is stable, so a query at the
        default (stable) mode sees every write of the test (``compat_helpers.wait_stable``).
        Against the bare emulator there is no cut to wait for."""
        if self.is_gateway:
            wait_stable(self.api_url, getattr(ns, "id", ns), timeout=timeout)

    def client(self, **kwargs: Any) -> turbopuffer.Turbopuffer:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("base_url", self.api_url)
        # Keep failing tests fast: a broken server must not cost 4 exponential retries per call.
        kwargs.setdefault("max_retries", 1)
        kwargs.setdefault("timeout", 15.0)
        return turbopuffer.Turbopuffer(**kwargs)


def _start(server: _Server) -> Optional[str]:
    try:
        server.start()
    except RuntimeError as e:
        return str(e)
    return None


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    mode = os.environ.get("LAYER_COMPAT_TARGET", "emulator").strip().lower() or "emulator"
    if mode not in ("emulator", "gateway"):
        raise pytest.UsageError(f"LAYER_COMPAT_TARGET must be 'emulator' or 'gateway', got {mode!r}")

    servers: List[_Server] = []
    emulator = _Server(
        "turbopuffer-emulator",
        [emulator_bin(), "--listen", "127.0.0.1:0", "--api-key", API_KEY],
    )
    failure = _start(emulator)
    if failure:
        pytest.fail(failure, pytrace=False)
    servers.append(emulator)
    api_url = emulator.url
    gateway_log = ""

    try:
        if mode == "gateway":
            gw_bin = os.environ.get("LAYER_GATEWAY_BIN")
            if not gw_bin:
                pytest.fail("LAYER_COMPAT_TARGET=gateway requires LAYER_GATEWAY_BIN", pytrace=False)
            gateway = _Server(
                "layer-gateway",
                [
                    gw_bin,
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream-url",
                    emulator.url,
                    "--upstream-api-key",
                    API_KEY,
                    # Each gateway gets its own data dir (its NVMe cache lives there).
                    "--data-dir",
                    tempfile.mkdtemp(prefix="compat-gateway-"),
                    "--config",
                    _gateway_config_file(),
                ],
                env=_gateway_env(),
            )
            failure = _start(gateway)
            if failure:
                pytest.fail(failure, pytrace=False)
            servers.append(gateway)
            api_url = gateway.url
            gateway_log = gateway.log_path

        emu = Emu(emulator.url)
        yield Target(api_url=api_url, emu_url=emulator.url, mode=mode, emu=emu, gateway_log=gateway_log)
        emu.close()
    finally:
        for s in reversed(servers):
            s.stop()


# The compat gateway's layer.yaml: what the client's read-only families need to have something to
# show (a configured warehouse). Everything else stays at its default.
GATEWAY_CONFIG = """\
warehouses:
  - name: compat-snowflake
    kind: snowflake
    snowflake:
      account: acme-xy12345
      user: LAYER_COMPAT
      warehouse: COMPUTE_WH
      keyPairSecretRef:
        name: snowflake-key
"""


def _gateway_config_file() -> str:
    fd, path = tempfile.mkstemp(prefix="compat-layer-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(GATEWAY_CONFIG)
    return path


def _gateway_env() -> dict:
    """The gateway's environment: this process's, plus the pipeline queue on the PostgreSQL the
    test command started (``LAYER_TEST_DATABASE_URL``) in a schema of its own, so parallel
    sessions never share pipelines, and the PromQL routes on its VictoriaMetrics. Without the variable the gateway runs without a database and
    the pipeline tests skip (under CI they fail instead: see ``test_hevlayer_pipelines``)."""
    env = dict(os.environ)
    url = os.environ.get("LAYER_TEST_DATABASE_URL", "")
    if url:
        env["LAYER_DATABASE_URL"] = url
        env["LAYER_DATABASE_SCHEMA"] = f"compat_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    # The PromQL routes forward to the VictoriaMetrics the test command started
    # (``LAYER_TEST_VM_URL``, ``scripts/vm-server``); without it they answer 503.
    vm = os.environ.get("LAYER_TEST_VM_URL", "")
    if vm:
        env["LAYER_METRICS_URL"] = vm
    return env


@pytest.fixture(scope="session")
def make_client(target: Target) -> Callable[..., turbopuffer.Turbopuffer]:
    """Factory: ``make_client(max_retries=0, timeout=1.0, api_key=...)``."""
    return target.client


@pytest.fixture(scope="session")
def tpuf(target: Target) -> turbopuffer.Turbopuffer:
    return target.client()


@pytest.fixture(scope="session")
def emu(target: Target) -> Emu:
    return target.emu


def new_ns_name(tag: str = "") -> str:
    return f"compat-{tag + '-' if tag else ''}{uuid.uuid4().hex[:16]}"


@pytest.fixture
def ns_name() -> str:
    return new_ns_name()


@pytest.fixture
def ns(tpuf: turbopuffer.Turbopuffer, ns_name: str, emu: Emu):
    """A fresh, unique (not yet created) namespace handle. Faults/pauses scoped to it are cleaned up."""
    handle = tpuf.namespace(ns_name)
    yield handle
    emu.clear_faults()
    try:
        emu.indexer(namespace=ns_name, paused=False)
    except Exception:
        pass


@pytest.fixture
def ns_factory(tpuf: turbopuffer.Turbopuffer):
    """Returns a function producing additional fresh namespace handles."""

    def make(tag: str = ""):
        return tpuf.namespace(new_ns_name(tag))

    return make


@pytest.fixture
def layer(target: Target) -> Target:
    """The gateway target; hevlayer tests skip against the bare emulator."""
    if not target.is_gateway:
        pytest.skip("hevlayer tests run against the gateway (LAYER_COMPAT_TARGET=gateway)")
    return target


@pytest.fixture
def pipelines(layer: Target) -> Target:
    """The gateway target with the pipeline queue: skips without ``LAYER_TEST_DATABASE_URL``,
    except under CI, where a missing database fails (``scripts/test`` starts PostgreSQL)."""
    if not os.environ.get("LAYER_TEST_DATABASE_URL"):
        if os.environ.get("CI") == "true":
            pytest.fail("LAYER_TEST_DATABASE_URL is unset under CI: scripts/test starts PostgreSQL")
        pytest.skip("no PostgreSQL for the pipeline queue (LAYER_TEST_DATABASE_URL unset)")
    return layer


# --- Every operation of the published client is called by some test -----------------------------
# hevlayer_ops records the client operations the tests call; each xdist worker hands its set to
# the controller, which fails the session (under LAYER_COMPAT_ALL_OPS=1) when an operation of
# the client was never called.
import hevlayer_ops  # noqa: E402

hevlayer_ops.install()
_WORKER_CALLS: set = set()


def pytest_testnodedown(node, error):
    _WORKER_CALLS.update(getattr(node, "workeroutput", {}).get("hevlayer_ops", []))


def pytest_sessionfinish(session, exitstatus):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["hevlayer_ops"] = sorted(hevlayer_ops.CALLED)
        return
    if os.environ.get("LAYER_COMPAT_ALL_OPS") != "1":
        return
    missing = sorted(hevlayer_ops.operations() - hevlayer_ops.CALLED - _WORKER_CALLS)
    total = len(hevlayer_ops.operations())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if missing:
        msg = f"hevlayer: {len(missing)} of {total} client operations are called by no test: {', '.join(missing)}"
        if reporter:
            reporter.write_line(msg, red=True)
        session.exitstatus = 1
    elif reporter:
        reporter.write_line(f"hevlayer: all {total} client operations were called by the suite", green=True)
