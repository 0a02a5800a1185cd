"""Auth, URL validation, JSON errors, SDK retry behaviour under injected faults, wire headers."""

from __future__ import annotations

import json

import httpx
import pytest
import turbopuffer
from turbopuffer import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    RateLimitError,
)

from compat_helpers import (
    API_KEY,
    FAULT_HEADER,
    STRONG,
    api_error,
    fault_token,
    fetch_all,
    header,
    ids,
)


def _write_one(ns, i=1):
    return ns.write(upsert_rows=[{"id": i, "x": i}])


def _posts(emu, ns_name, suffix=""):
    return [
        r
        for r in emu.requests_for(ns_name)
        if r["method"] == "POST" and r["path"] == f"/v2/namespaces/{ns_name}{suffix}"
    ]


def _aimed_client(make_client, **kw):
    """A client whose every request carries a fresh ``FAULT_HEADER`` token, and the token: rules
    added with ``emu.faults(..., token=token)`` fire only on this client's requests, never on the
    gateway's own (its metadata polls and the write-path mirror's read-back query)."""
    token = fault_token()
    return make_client(default_headers={FAULT_HEADER: token}, **kw), token


def _queries(emu, ns_name, token):
    """The queries of this test's client that reached upstream (the gateway's own are left out)."""
    return [r for r in emu.requests_for(ns_name, token=token) if r["path"].endswith("/query")]


# ------------------------------------------------------------------------------------------
# Auth
# ------------------------------------------------------------------------------------------


def test_missing_bearer_is_401_envelope(target, ns):
    if target.is_gateway:
        pytest.skip("gateway authentication is tested elsewhere")
    r = httpx.get(f"{target.api_url}/v2/namespaces/{ns.id}/metadata", timeout=5)
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == "error" and isinstance(body["error"], str) and body["error"]


def test_wrong_api_key_is_authentication_error(target, make_client, ns_name):
    if target.is_gateway:
        pytest.skip("gateway authentication is tested elsewhere")
    client = make_client(api_key="tpuf_not_the_right_key", max_retries=0)
    with api_error(AuthenticationError, 401):
        client.namespace(ns_name).write(upsert_rows=[{"id": 1}])
    with api_error(AuthenticationError, 401):
        list(client.namespaces())


def test_correct_key_works(make_client, ns_name):
    client = make_client(api_key=API_KEY)
    client.namespace(ns_name).write(upsert_rows=[{"id": 1}])
    assert client.namespace(ns_name).exists()


# ------------------------------------------------------------------------------------------
# URL validation (plain-text 400s)
# ------------------------------------------------------------------------------------------


def test_invalid_namespace_characters(tpuf, target):
    with api_error(
        BadRequestError,
        400,
        "Invalid URL: Namespace contains invalid characters, must be [A-Za-z0-9-_.]",
        envelope=False,
    ) as h:
        tpuf.namespace("bad!name").write(upsert_rows=[{"id": 1}])
    assert not isinstance(h["exc"].body, dict), "URL validation errors are plain text, not JSON"
    r = httpx.get(
        f"{target.api_url}/v2/namespaces/bad!name/metadata",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert r.status_code == 400
    assert not r.headers.get("content-type", "").startswith("application/json")


def test_namespace_too_long(tpuf):
    name = "a" * 129
    with api_error(
        BadRequestError,
        400,
        f"Invalid URL: Namespace `{name}` is too long, limit is currently 128 characters",
        envelope=False,
    ):
        tpuf.namespace(name).metadata()


def test_namespace_name_limits_accepted(tpuf, emu):
    import uuid

    name = ("compat-" + uuid.uuid4().hex + "-_." + "z" * 128)[:128]
    ns = tpuf.namespace(name)
    _write_one(ns)
    assert ids(ns.query(rank_by=["id", "asc"], top_k=1, consistency=STRONG).rows) == [1]
    ns.delete_all()


def test_malformed_json_body(target, ns):
    _write_one(ns)
    r = httpx.post(
        f"{target.api_url}/v2/namespaces/{ns.id}/query",
        content=b"{not json",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error"
    assert body["error"].startswith("Failed to parse the request body as JSON")


# ------------------------------------------------------------------------------------------
# Fault injection and SDK retries
# ------------------------------------------------------------------------------------------


def test_500_then_success_is_retried(make_client, ns_name, emu, target):
    client, token = _aimed_client(make_client, max_retries=2)
    ns = client.namespace(ns_name)
    emu.faults({"route": "write", "namespace": ns_name, "status": 500, "count": 1}, token=token)
    emu.clear_requests()
    res = _write_one(ns)
    assert res.status == "OK" and res.rows_upserted == 1
    posts = _posts(emu, ns_name)
    # The gateway does not retry writes itself: upstream sees the SDK's attempt and its retry.
    assert len(posts) == 2, f"expected one failed attempt and one retry, got {len(posts)}"
    if target.is_gateway:
        print("gateway: SDK retry headers are the gateway's to forward; only the count is checked")
    else:
        assert header(posts[0], "x-stainless-retry-count") == "0"
        assert header(posts[1], "x-stainless-retry-count") == "1"
    assert sorted(fetch_all(ns)) == [1]


def test_500_without_retries_raises_then_recovers(make_client, ns_name, emu):
    client, token = _aimed_client(make_client, max_retries=0)
    ns = client.namespace(ns_name)
    emu.faults({"route": "write", "namespace": ns_name, "status": 500, "count": 1}, token=token)
    with pytest.raises(InternalServerError) as ei:
        _write_one(ns)
    assert ei.value.status_code == 500
    assert not ns.exists(), "a faulted write must not be applied"
    assert _write_one(ns).status == "OK"  # count=1 is consumed


@pytest.mark.parametrize(
    "status,exc",
    [(429, RateLimitError), (409, ConflictError), (503, InternalServerError), (400, BadRequestError)],
)
def test_fault_status_maps_to_sdk_error_class(make_client, ns_name, emu, target, status, exc):
    client, token = _aimed_client(make_client, max_retries=0)
    ns = client.namespace(ns_name)
    _write_one(ns)
    # The default query path: a stable namespace, no cut, and the gateway's own one retry of a
    # 429 (with the predicate forced), so through the gateway a 429 must answer twice to reach
    # the SDK.
    target.wait_stable(ns)
    gateway_429_retry = target.is_gateway and status == 429
    emu.faults(
        {"route": "query", "namespace": ns_name, "status": status, "count": 2 if gateway_429_retry else 1},
        token=token,
    )
    with pytest.raises(exc) as ei:
        ns.query(rank_by=["id", "asc"], top_k=1)
    assert ei.value.status_code == status
    assert len(_queries(emu, ns_name, token)) == (2 if gateway_429_retry else 1)
    assert ids(ns.query(rank_by=["id", "asc"], top_k=1).rows) == [1]


def test_fault_custom_body_and_x_should_retry(make_client, ns_name, emu, target):
    client, token = _aimed_client(make_client, max_retries=3)
    ns = client.namespace(ns_name)
    _write_one(ns)
    body = {"status": "error", "error": "💁 injected failure"}
    emu.faults(
        {
            "route": "query",
            "namespace": ns_name,
            "status": 503,
            "count": 5,
            "body": body,
            "headers": {"x-should-retry": "false"},
        },
        token=token,
    )
    with pytest.raises(InternalServerError) as ei:
        ns.query(rank_by=["id", "asc"], top_k=1)
    assert ei.value.body == body
    # Through the gateway too: it relays x-should-retry and does not retry a 503 itself.
    assert len(_queries(emu, ns_name, token)) == 1, "x-should-retry: false must stop SDK retries"


def test_sticky_fault_until_cleared(make_client, ns_name, emu):
    client, token = _aimed_client(make_client, max_retries=0)
    ns = client.namespace(ns_name)
    _write_one(ns)
    emu.faults({"route": "metadata", "namespace": ns_name, "status": 500, "probability": 1.0}, token=token)
    for _ in range(3):
        with pytest.raises(InternalServerError):
            ns.metadata()
    emu.clear_faults()
    emu.flush(ns_name)  # everything indexed: the state is pinned
    assert ns.metadata().index.status == "up-to-date"


def test_fault_is_scoped_to_namespace_and_method(make_client, ns_factory, emu):
    client, token = _aimed_client(make_client, max_retries=0)
    a = client.namespace(ns_factory("a").id)
    b = client.namespace(ns_factory("b").id)
    _write_one(a)
    _write_one(b)
    emu.faults(
        {"route": "query", "namespace": a.id, "method": "POST", "status": 500, "probability": 1.0}, token=token
    )
    with pytest.raises(InternalServerError):
        a.query(rank_by=["id", "asc"], top_k=1)
    assert ids(b.query(rank_by=["id", "asc"], top_k=1, consistency=STRONG).rows) == [1]
    assert a.metadata() is not None  # other routes of the same namespace unaffected
    emu.clear_faults()


def test_fault_delay_causes_client_timeout(make_client, ns_name, emu):
    client, token = _aimed_client(make_client, max_retries=0, timeout=0.5)
    ns = client.namespace(ns_name)
    _write_one(ns)
    emu.faults({"route": "query", "namespace": ns_name, "delay_ms": 1500, "count": 1}, token=token)
    with pytest.raises(APITimeoutError):
        ns.query(rank_by=["id", "asc"], top_k=1)
    emu.clear_faults()


ROUTE_CALLS = {
    "metadata": lambda ns, c: ns.metadata(),
    "schema": lambda ns, c: ns.schema(),
    "update_schema": lambda ns, c: ns.update_schema(schema={"y": "string"}),
    "update_metadata": lambda ns, c: ns.update_metadata(read_only=False),
    "hint_cache_warm": lambda ns, c: ns.hint_cache_warm(),
    "recall": lambda ns, c: ns.recall(num=1, top_k=1),
    "explain": lambda ns, c: ns.explain_query(rank_by=["id", "asc"], top_k=1),
    "delete": lambda ns, c: ns.delete_all(),
    "list": lambda ns, c: c.namespaces(prefix=ns.id),
    "copy_async": lambda ns, c: c.namespace(ns.id + "-dst").start_copy_from(source_namespace=ns.id),
}


def _check_route_answer(route, r, ns):
    """The normal answer of each ROUTE_CALLS route for the one-row namespace the test writes."""
    if route in ("metadata", "update_metadata"):
        assert (r.index.status, r.approx_row_count) == ("up-to-date", 1), r
    elif route == "schema":
        assert sorted(r) == ["id", "vector"], r
    elif route == "update_schema":
        assert (sorted(r), r["y"].type) == (["id", "vector", "y"], "string"), r
    elif route == "hint_cache_warm":
        assert r.status == "ACCEPTED", r
    elif route == "recall":
        assert (r.avg_recall, r.avg_ann_count, r.avg_exhaustive_count) == (1.0, 1.0, 1.0), r
    elif route == "explain":
        assert r.plan_text.startswith(f"OrderedScan(namespace={ns.id}, docs=1,"), r
    elif route == "delete":
        assert r.status == "OK" and not ns.exists(), r
    elif route == "list":
        assert [n.id for n in r] == [ns.id]
    elif route == "copy_async":
        assert r.token.startswith("op_"), r
    else:
        pytest.fail(f"no answer check for route {route}")


@pytest.mark.parametrize("route", sorted(ROUTE_CALLS))
def test_fault_route_classification(make_client, ns_name, emu, route):
    client, token = _aimed_client(make_client, max_retries=0)
    ns = client.namespace(ns_name)
    ns.write(upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}], distance_metric="cosine_distance")
    emu.flush(ns_name)
    rule = {"route": route, "status": 503, "count": 1}
    if route not in ("list", "copy_async"):
        rule["namespace"] = ns_name
    emu.faults(rule, token=token)
    with pytest.raises(InternalServerError):
        ROUTE_CALLS[route](ns, client)
    emu.clear_faults()
    # ... and works once the fault is gone, with the route's normal answer.
    _check_route_answer(route, ROUTE_CALLS[route](ns, client), ns)


def test_fault_on_operation_poll(make_client, ns_factory, emu):
    client, aim = _aimed_client(make_client, max_retries=0)
    src = client.namespace(ns_factory("src").id)
    dst = client.namespace(ns_factory("dst").id)
    _write_one(src)
    before = emu.raw("GET", "/_emu/config").json()["async_op_delay_ms"]
    assert emu.raw("POST", "/_emu/config", json={"async_op_delay_ms": 120_000}).status_code == 200
    try:
        token = dst.start_copy_from(source_namespace=src.id).token
    finally:
        assert emu.raw("POST", "/_emu/config", json={"async_op_delay_ms": before}).status_code == 200
    emu.faults({"route": "operation", "status": 503, "count": 1}, token=aim)
    with pytest.raises(InternalServerError):
        dst.poll_copy_from(token)
    emu.clear_faults()
    # The copy was started with the emulator's async_op_delay_ms pinned far above this test's
    # run time, so it is still running.
    assert dst.poll_copy_from(token).status == "running"


# ------------------------------------------------------------------------------------------
# Wire details seen by the server
# ------------------------------------------------------------------------------------------


def test_sdk_headers_reach_server(tpuf, ns_name, emu, target):
    if target.is_gateway:
        pytest.skip("header forwarding policy is the gateway's business")
    emu.clear_requests()
    tpuf.namespace(ns_name).write(upsert_rows=[{"id": 1}])
    req = _posts(emu, ns_name)[-1]
    assert header(req, "authorization") == f"Bearer {API_KEY}"
    assert header(req, "prefer") == "respond-async"
    assert (header(req, "user-agent") or "").startswith("Turbopuffer/Python 3.1.0")
    assert (header(req, "content-type") or "").startswith("application/json")
    assert json.loads(req["body"]) == {"upsert_rows": [{"id": 1}]}


def test_gzip_request_and_response_compression(make_client, ns_name, emu, target):
    client = make_client(compression=True)
    ns = client.namespace(ns_name)
    emu.clear_requests()
    rows = [{"id": i, "text": "lorem ipsum dolor sit amet " * 4} for i in range(1, 41)]
    res = ns.write(upsert_rows=rows)
    assert res.rows_upserted == 40
    req = _posts(emu, ns_name)[-1]
    assert len(json.loads(req["body"])["upsert_rows"]) == 40, "log shows the decoded body"
    if target.is_gateway:
        print("gateway: the upstream request's encoding is the gateway's choice; not checked")
    else:
        assert (header(req, "content-encoding") or "").lower() == "gzip"
    got = ns.query(rank_by=["id", "asc"], top_k=100, include_attributes=["text"], consistency=STRONG)
    assert ids(got.rows) == list(range(1, 41))
    assert got.rows[0]["text"] == rows[0]["text"]


def test_small_responses_are_not_compressed(make_client, ns_name):
    """Responses under 1 KiB come back uncompressed even when gzip is accepted; large ones are gzipped."""
    ns = make_client(compression=True).namespace(ns_name)
    ns.write(upsert_rows=[{"id": 1, "text": "z" * 2000}])
    small = ns.with_raw_response.query(rank_by=["id", "asc"], top_k=1, consistency=STRONG)
    assert small.headers.get("content-encoding") is None
    assert small.parse().rows[0].id == 1
    big = ns.with_raw_response.query(rank_by=["id", "asc"], top_k=1, include_attributes=["text"], consistency=STRONG)
    assert big.headers.get("content-encoding") == "gzip"
    assert big.parse().rows[0]["text"] == "z" * 2000


def test_explicit_prefer_header_override(ns):
    """Callers may disable async mode; the server must answer synchronously."""
    res = ns.write(upsert_rows=[{"id": 1}], extra_headers={"prefer": "respond-sync"})
    assert res.status == "OK"


def test_client_module_exports():
    # Guard against accidentally running with a different SDK version.
    assert turbopuffer.__version__ == "3.1.0"


def test_retry_after_ms_header_honoured(make_client, ns_name, emu, target):
    client, token = _aimed_client(make_client, max_retries=1)
    ns = client.namespace(ns_name)
    _write_one(ns)
    # The default query path: through the gateway a stable namespace's 429 is retried once by the
    # gateway (predicate forced), so the fault answers that retry too and the SDK gets the 429.
    target.wait_stable(ns)
    emu.faults({"route": "query", "namespace": ns_name, "status": 429, "count": 2 if target.is_gateway else 1,
                "headers": {"retry-after-ms": "20"}}, token=token)
    assert ids(ns.query(rank_by=["id", "asc"], top_k=1).rows) == [1]
    # The 429 (and, through the gateway, its retry's 429, relayed with retry-after-ms), then the
    # SDK's one retry, which succeeds.
    assert len(_queries(emu, ns_name, token)) == (3 if target.is_gateway else 2)


def test_request_log_limit_and_order(tpuf, ns_name, emu, target):
    if target.is_gateway:
        pytest.skip("the gateway may add or rewrite upstream requests")
    ns = tpuf.namespace(ns_name)
    _write_one(ns)
    emu.clear_requests()
    ns.metadata()
    ns.schema()
    ns.query(rank_by=["id", "asc"], top_k=1)
    reqs = emu.requests(limit=2)
    assert len(reqs) == 2
    assert reqs[0]["method"] == "GET" and reqs[0]["path"].endswith(f"/{ns_name}/schema")
    assert reqs[1]["method"] == "POST" and reqs[1]["path"].endswith(f"/{ns_name}/query")
    assert json.loads(reqs[1]["body"]) == {"rank_by": ["id", "asc"], "top_k": 1}
    emu.clear_requests()
    assert [r for r in emu.requests() if ns_name in r["path"]] == []


def test_fault_probability_zero_never_fires(make_client, ns_name, emu):
    client, token = _aimed_client(make_client, max_retries=0)
    ns = client.namespace(ns_name)
    _write_one(ns)
    emu.faults({"route": "query", "namespace": ns_name, "status": 500, "probability": 0.0}, token=token)
    for _ in range(5):
        assert ids(ns.query(rank_by=["id", "asc"], top_k=1, consistency=STRONG).rows) == [1]
    emu.clear_faults()
