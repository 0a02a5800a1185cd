"""Shared helpers for the Turbopuffer compatibility suite (not a test module)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import struct
import time
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Type

import httpx
import pytest
import turbopuffer

API_KEY = "tpuf_compatsuite0000000000000000"

DESERIALIZE_PREFIX = "Failed to deserialize the JSON body into the target type: "

# A query sent with this reads its own writes through the gateway too (forwarded unchanged, a
# strong upstream read); at the gateway's default (stable) mode a read right after a write is cut
# at the watermark by design (docs/src/stable-reads.md).
STRONG: Dict[str, str] = {"level": "strong"}

# The header a test sends on the requests its fault rules are aimed at (see ``Emu.faults``).
FAULT_HEADER = "x-test-fault"


def fault_token() -> str:
    """A fresh value for ``FAULT_HEADER``: the SDK client of one test sends it, its rules match it."""
    return uuid.uuid4().hex


# --------------------------------------------------------------------------------------------
# Control plane client (/_emu/...)
# --------------------------------------------------------------------------------------------


class Emu:
    """Thin client for the emulator's control routes. Always talks to the emulator directly."""

    def __init__(self, base_url: str, api_key: str = API_KEY) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10.0,
        )

    def close(self) -> None:
        self._http.close()

    def _check(self, r: httpx.Response) -> Any:
        assert r.status_code < 300, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            return r.text

    # Indexer ---------------------------------------------------------------------------------
    def indexer(self, *, paused: bool, namespace: Optional[str] = None, rows_per_sec: Optional[int] = None) -> Any:
        body: Dict[str, Any] = {"paused": paused}
        if namespace is not None:
            body["namespace"] = namespace
        if rows_per_sec is not None:
            body["rows_per_sec"] = rows_per_sec
        return self._check(self._http.post("/_emu/indexer", json=body))

    def pause(self, namespace: Optional[str] = None) -> Any:
        return self.indexer(paused=True, namespace=namespace)

    def resume(self, namespace: Optional[str] = None) -> Any:
        return self.indexer(paused=False, namespace=namespace)

    def flush(self, namespace: Optional[str] = None) -> Any:
        body = {} if namespace is None else {"namespace": namespace}
        return self._check(self._http.post("/_emu/indexer/flush", json=body))

    # Faults ----------------------------------------------------------------------------------
    def faults(self, *rules: Dict[str, Any], token: Optional[str] = None) -> Any:
        """Appends fault rules. With ``token`` each rule fires only on requests carrying
        ``FAULT_HEADER: token`` (the emulator's ``match_headers``): through the gateway, its own
        requests on the same route and namespace (the watcher's metadata polls, the write-path
        mirror's read-back query) carry no such header and cannot consume a one-shot fault."""
        if token is not None:
            rules = tuple({**r, "match_headers": {FAULT_HEADER: token}} for r in rules)
        return self._check(self._http.post("/_emu/faults", json={"rules": list(rules)}))

    def clear_faults(self) -> Any:
        return self._check(self._http.delete("/_emu/faults"))

    # Request log -----------------------------------------------------------------------------
    def requests(self, limit: int = 200) -> List[Dict[str, Any]]:
        data = self._check(self._http.get("/_emu/requests", params={"limit": limit}))
        return data["requests"]

    def clear_requests(self) -> Any:
        return self._check(self._http.delete("/_emu/requests"))

    def requests_for(self, namespace: str, limit: int = 500, token: Optional[str] = None) -> List[Dict[str, Any]]:
        """Logged data-plane requests whose path mentions ``namespace`` (oldest first); with
        ``token``, only those carrying ``FAULT_HEADER: token`` (the test's own, not the gateway's)."""
        return [
            r
            for r in self.requests(limit)
            if f"/{namespace}" in r["path"] and (token is None or header(r, FAULT_HEADER) == token)
        ]

    # Raw access ------------------------------------------------------------------------------
    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self._http.request(method, path, **kw)


def header(req: Dict[str, Any], name: str) -> Optional[str]:
    for k, v in (req.get("headers") or {}).items():
        if k.lower() == name.lower():
            return v if not isinstance(v, list) else v[0]
    return None


# --------------------------------------------------------------------------------------------
# Vector math (expected values are computed from f32-rounded inputs, like the server stores them)
# --------------------------------------------------------------------------------------------


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32v(v: Sequence[float]) -> List[float]:
    return [f32(x) for x in v]


def cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = f32v(a), f32v(b)
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / (na * nb)


def euclidean_squared(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = f32v(a), f32v(b)
    return sum((x - y) ** 2 for x, y in zip(a, b))


def b64_f32(v: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii")


def decode_b64_f32(s: str) -> List[float]:
    raw = base64.b64decode(s)
    assert len(raw) % 4 == 0, f"base64 vector has {len(raw)} bytes"
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def expected_ranking(docs: Dict[Any, Sequence[float]], q: Sequence[float], metric: str) -> List[tuple]:
    fn = cosine_distance if metric == "cosine_distance" else euclidean_squared
    scored = sorted(((fn(v, q), i) for i, v in docs.items()), key=lambda t: (t[0], str(t[1])))
    # The fixtures are chosen so there are no ties; guard that assumption.
    for (d1, _), (d2, _) in zip(scored, scored[1:]):
        assert abs(d1 - d2) > 1e-4, f"test data has a distance tie: {scored}"
    return [(i, d) for d, i in scored]


# --------------------------------------------------------------------------------------------
# Row helpers
# --------------------------------------------------------------------------------------------


def row_dicts(rows: Optional[Iterable[Any]]) -> List[Dict[str, Any]]:
    assert rows is not None, "response has no rows"
    return [r.to_dict() for r in rows]


def ids(rows: Optional[Iterable[Any]]) -> List[Any]:
    assert rows is not None, "response has no rows"
    return [r.id for r in rows]


def group_dicts(groups: Optional[Iterable[Any]]) -> List[Dict[str, Any]]:
    assert groups is not None, "response has no aggregation_groups"
    return [g if isinstance(g, dict) else g.to_dict() for g in groups]


def create_and_pause(ns, emu: "Emu") -> None:
    """Create ``ns`` empty (id type uint) and pause its indexer, so the first write stays unindexed.

    (The emulator only accepts per-namespace indexer settings for existing namespaces.)
    """
    ns.write(create_namespace=True, schema={"id": "uint"})
    emu.pause(ns.id)


def fetch_all(ns, *, filters: Any = None, include_attributes: Any = True, **kw: Any) -> Dict[Any, Dict[str, Any]]:
    """All documents (by id) via an id-ordered strong query (it reads the test's own writes, also
    through the gateway). Null attributes are dropped (null == absent)."""
    params: Dict[str, Any] = dict(
        rank_by=["id", "asc"], top_k=1000, include_attributes=include_attributes, consistency=STRONG
    )
    if filters is not None:
        params["filters"] = filters
    params.update(kw)
    res = ns.query(**params)
    return {r["id"]: {k: v for k, v in r.items() if v is not None} for r in row_dicts(res.rows)}


def wait_until(pred, timeout: float = 5.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


def wait_stable(api_url: str, namespace: str, timeout: float = 20.0) -> Dict[str, Any]:
    """Waits until the gateway at ``api_url`` reports ``namespace`` stable and returns its metadata.

    Polls ``GET /v2/namespaces/{ns}/metadata`` every 50 ms until ``layer.is_stable`` is true, which
    the gateway reports once its watermark covers every write it acknowledged for the namespace
    (docs/src/stable-reads.md): from then on a query at the default (stable) mode sees them all.
    About 1-1.5 s after a write at the default poll interval and safety margin; bounded by
    ``timeout``. Gateway only (``Target.wait_stable`` skips it against the bare emulator).
    """
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(
            f"{api_url}/v2/namespaces/{namespace}/metadata",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10.0,
        )
        last: Any = r.json() if r.status_code == 200 else f"{r.status_code}: {r.text}"
        if r.status_code == 200 and (last.get("layer") or {}).get("is_stable") is True:
            return last
        assert time.monotonic() < deadline, f"{namespace} not stable after {timeout}s; metadata: {last!r}"
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Error assertions
# --------------------------------------------------------------------------------------------


def error_text(exc: turbopuffer.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        return str(body.get("error"))
    return str(body)


@contextlib.contextmanager
def api_error(
    cls: Type[turbopuffer.APIStatusError],
    status: int,
    text: Optional[str] = None,
    *,
    contains: Optional[Sequence[str]] = None,
    startswith: Optional[str] = None,
    envelope: bool = True,
) -> Iterator[Any]:
    """Assert the block raises ``cls`` with ``status`` and (optionally) an exact/partial error text."""
    holder: Dict[str, Any] = {}
    with pytest.raises(cls) as ei:
        yield holder
    exc = ei.value
    holder["exc"] = exc
    assert exc.status_code == status, f"status {exc.status_code} != {status}; body={exc.body!r}"
    if envelope:
        assert isinstance(exc.body, dict), f"expected JSON error envelope, got {exc.body!r}"
        assert exc.body.get("status") == "error", f"envelope status field: {exc.body!r}"
        assert isinstance(exc.body.get("error"), str), f"envelope error field: {exc.body!r}"
    msg = error_text(exc)
    if text is not None:
        assert msg == text, f"error text mismatch:\n  got:      {msg!r}\n  expected: {text!r}"
    for part in contains or ():
        assert part in msg, f"error text {msg!r} does not contain {part!r}"
    if startswith is not None:
        assert msg.startswith(startswith), f"error text {msg!r} does not start with {startswith!r}"


def not_found_text(ns_name: str) -> str:
    return f"🤷 namespace '{ns_name}' was not found"


# --------------------------------------------------------------------------------------------
# Canonical query fixture data
# --------------------------------------------------------------------------------------------

VECTORS: Dict[int, List[float]] = {
    1: [1.0, 0.0, 0.0],
    2: [0.0, 1.0, 0.0],
    3: [0.0, 0.0, 1.0],
    4: [1.0, 1.0, 0.0],
    5: [0.5, 0.5, 0.5],
    6: [-1.0, 0.5, 0.0],
}

QUERY_SCHEMA: Dict[str, Any] = {
    "title": {"type": "string", "full_text_search": True},
    "sku": {"type": "string", "glob": True, "filterable": True},
    "code": {"type": "string", "regex": True, "filterable": True},
    "name": {"type": "string", "fuzzy": True, "filterable": True},
    "rating": "float",
    "created": "datetime",
}


def query_docs() -> List[Dict[str, Any]]:
    """Six documents; ``price`` is missing (null) on id 4."""
    base = [
        dict(id=1, title="the quick brown fox jumps", category="animal", price=10, rating=4.5,
             tags=["red", "blue"], sizes=[1, 5], active=True, sku="ABC-001", code="x-100",
             name="jonathan", created="2024-01-01T00:00:00Z"),
        dict(id=2, title="lazy dog sleeps all day", category="animal", price=20, rating=3.0,
             tags=["blue"], sizes=[10], active=False, sku="ABC-002", code="x-200",
             name="johanna", created="2024-02-01T00:00:00Z"),
        dict(id=3, title="quick quick fox", category="plant", price=30, rating=2.5,
             tags=["green"], sizes=[3, 30], active=True, sku="XYZ-003", code="y-300",
             name="maria", created="2024-03-01T00:00:00Z"),
        dict(id=4, title="brown bear", category="plant", rating=1.0,
             tags=[], sizes=[], active=False, sku="xyz-004", code="y-400",
             name="marie", created="2024-04-01T00:00:00Z"),
        dict(id=5, title="fox and dog", category="mineral", price=50, rating=5.0,
             tags=["red"], sizes=[7], active=True, sku="DEF-005", code="z-500",
             name="peter", created="2024-05-01T00:00:00Z"),
        dict(id=6, title="nothing here at all", category="mineral", price=60, rating=0.5,
             tags=["black"], sizes=[100, 200], active=False, sku="def-006", code="z-600",
             name="petra", created="2024-06-01T00:00:00Z"),
    ]
    for d in base:
        d["vector"] = list(VECTORS[d["id"]])
    return base


def load_query_docs(ns, emu: Emu, metric: str = "cosine_distance") -> None:
    res = ns.write(upsert_rows=query_docs(), distance_metric=metric, schema=QUERY_SCHEMA)
    assert res.rows_upserted == 6
    emu.flush(ns.id)


def run(coro: Any) -> Any:
    """Runs an async test body to completion (the hevlayer tests use the async client)."""
    return asyncio.run(coro)


def fresh(tag: str, prefix: str = "hev") -> str:
    """A namespace name unique to this call: ``{prefix}-{tag}-{12 hex}``."""
    return f"{prefix}-{tag}-{uuid.uuid4().hex[:12]}"
