"""The published ``hevlayer`` 0.7.3 client against the gateway: minted API keys, unchanged.

The six key operations with the client's own models (``MintKeyRequest`` with
``ApiKeyEntitlement`` values, ``AuthenticateKeyRequest``): ``mint_key`` (``MintKeyResponse``: a
``keyId``, phase ``Active``, an ``hvl_…`` token, ``createdAt``, ``expiresAt`` from the client's
always-sent ``expiresAfter: "365d"``, ``lookupHash`` = ``sha256:`` of the token, the
``EntitlementTargetMissing`` condition for a warehouse that does not exist), ``list_keys`` and
``get_key`` (``ApiKey``, never a token), ``authenticate_key`` from a client without a key (the
claims echoed; 401 for a bad, revoked or expired token), ``revoke_key`` (idempotent, the record
kept, listed with ``includeRevoked``), ``delete_key`` (then 404), expiry, and the 409 / 422
shapes.

Then minted tokens drive a second ``AsyncHevlayer`` (the token as its ``api_key``), within their
scopes and namespace globs and refused outside them with 403 and the spec's bodies
(``insufficient API key scope`` + ``required_scope``, ``namespace not in key grant`` +
``namespace``) on every route family: the namespace data plane (query, write, fetch, metadata,
the filtered listing), scans, snapshots, search history and warm against ``vectorstore.default``
grants; pipelines, UDFs and keys on the control plane, where a vectorstore-only key is refused,
a ``layer: read`` key lists, a ``layer: admin`` key limited to a glob reaches only pipelines and
UDFs on its namespaces, and only ``layer: admin`` mints.

A 401/403 answered before the request body arrived keeps the keep-alive connection usable (the
gateway reads the body first): ``test_an_early_refusal_keeps_the_connection_usable`` pins it at
the wire, and ``refused`` no longer needs to tolerate a closed connection.

No test may leave a token in the gateway's log (its stderr, ``Target.gateway_log``) or in
``GET /metrics``: each test checks the tokens it minted at its end, and
``test_tokens_never_reach_the_log_or_the_metrics`` uses one in every way first.

Everything runs at the documented defaults (``deriveFromStore``: the compat gateway's store
credential ``API_KEY`` is the bootstrap admin; keys live 365 days) unless a test says why not.
Keys live in the pipelines' PostgreSQL: the gateway gets it from ``LAYER_TEST_DATABASE_URL``
(``conftest._gateway_env``); without it these tests skip, except under CI where they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import urlparse

import httpx
import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import (
    ApiKey,
    ApiKeyEntitlement,
    ApiKeyList,
    AuthenticateKeyRequest,
    AuthenticateKeyResponse,
    CreatePipelineRequest,
    CreateScanRequest,
    CreateSnapshotRequest,
    CreateUdfRequest,
    Document,
    FetchDocumentsRequest,
    FetchDocumentsResponse,
    GetUdfResponse,
    NamespaceList,
    MintKeyRequest,
    MintKeyResponse,
    Pipeline,
    PipelineList,
    ScanCountResponse,
    ScanJobList,
    SearchHistoryListResponse,
    SnapshotJob,
    SnapshotJobList,
    SnapshotPolicy,
    StatusResponse,
    Udf,
    UdfList,
    UdfSpec,
    UdfWorkerSpec,
    WarmJob,
    WarmJobList,
)

from compat_helpers import API_KEY, STRONG, fresh, run

SCOPE = "insufficient API key scope"
GRANT = "namespace not in key grant"
# The store the compat gateway's namespaces live on (no store is configured: the default name).
STORE = "vectorstore.default"


@pytest.fixture
def keys(pipelines):
    """The gateway with the key store (minted keys live in the pipelines' PostgreSQL,
    ``conftest.pipelines``: skips without it)."""
    return pipelines


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def client(target, token: Optional[str] = API_KEY) -> AsyncHevlayer:
    """The client with ``token`` as its ``api_key`` (``None``: no Authorization header at all)."""
    return AsyncHevlayer(api_key=token, base_url=target.api_url)


def ents(by_target: dict[str, dict[str, Any]]) -> dict[str, ApiKeyEntitlement]:
    """An entitlements map of the client's models (``layer``, ``vectorstore.<name>``,
    ``warehouse.<name>`` to scopes, namespaces, claims)."""
    return {k: ApiKeyEntitlement(**v) for k, v in by_target.items()}


async def mint(c: AsyncHevlayer, tag: str, entitlements: dict[str, ApiKeyEntitlement], **kw: Any) -> MintKeyResponse:
    """``mint_key`` with the client's model (key names are unique per gateway: a fresh one)."""
    m = await c.mint_key(MintKeyRequest(name=fresh(tag, prefix="key"), entitlements=entitlements, **kw))
    assert isinstance(m, MintKeyResponse) and m.phase == "Active" and m.token.startswith("hvl_"), m
    return m


async def refused(call: Callable[[], Awaitable[Any]], status: int, error: str, **context: Any) -> HevlayerError:
    """Calls ``call()``: the client must raise ``HevlayerError`` with ``status``, the spec's
    ``error`` and the body's context keys (``required_scope``, ``namespace``, ``field``)."""
    try:
        await call()
    except HevlayerError as e:
        err = e
    else:
        pytest.fail(f"the call succeeded; expected {status} {error!r}")
    body = err.response.json() if err.response is not None else {}
    assert (err.status_code, err.error) == (status, error), f"{err.status_code} {err.error!r}: {body}"
    assert err.message, body
    for k, v in context.items():
        assert body.get(k) == v, f"{k}: {body}"
    return err


def extra(model: Any, key: str) -> Any:
    """A key the gateway adds beyond the client's model (kept: every model allows extras)."""
    return (model.model_extra or {}).get(key)


def when(ts: str) -> datetime:
    """An RFC 3339 timestamp of the key model."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def assert_never_logged(target, *tokens: str) -> None:
    """No token, nor its secret part (after ``hvl_``), in the gateway's log or ``GET /metrics``."""
    assert target.gateway_log and os.path.isfile(target.gateway_log), f"no gateway log: {target.gateway_log!r}"
    with open(target.gateway_log, encoding="utf-8", errors="replace") as f:
        log = f.read()
    metrics = httpx.get(f"{target.api_url}/metrics", timeout=30.0)
    assert metrics.status_code == 200 and "# TYPE" in metrics.text
    for t in tokens:
        assert t.startswith("hvl_") and len(t) > 20
        assert t[4:] not in log, f"a token is in the gateway log {target.gateway_log}"
        assert t[4:] not in metrics.text, "a token is in GET /metrics"


async def grant_setup(c: AsyncHevlayer, target) -> tuple[str, str, str]:
    """Writes two namespaces: ``inside`` (matches ``glob``) and ``outside`` (shares the prefix,
    not the glob); both stable, so reads at the default mode see every row."""
    base = fresh("keys")
    inside, outside = f"{base}-in", f"{base}x"
    rows = [{"id": f"d{i}", "color": ["red", "blue"][i % 2], "vector": [1.0, float(i)]} for i in range(6)]
    for ns in (inside, outside):
        w = await c.write_namespace(ns, {"upsert_rows": rows, "distance_metric": "cosine_distance"})
        assert w.rows_upserted == 6
    for ns in (inside, outside):
        target.wait_stable(ns)
    return f"{base}-*", inside, outside


# --------------------------------------------------------------------------------------------
# The six key operations
# --------------------------------------------------------------------------------------------


def test_mint_list_get_authenticate_revoke_delete(keys):
    glob = fresh("cohort") + "-*"

    async def go():
        async with client(keys) as admin, client(keys, None) as anon:
            name = fresh("reader", prefix="key")
            m = await admin.mint_key(
                MintKeyRequest(
                    name=name,
                    owner="acme",
                    description="the docs' cohort reader",
                    entitlements=ents(
                        {
                            STORE: {"scopes": ["read"], "namespaces": [glob]},
                            "warehouse.prod-snowflake": {"claims": ["notes:cohort:*:read"]},
                        }
                    ),
                )
            )
            assert isinstance(m, MintKeyResponse)
            token = m.token
            assert token.startswith("hvl_") and len(token) == 47 and token[4:].isalnum(), token
            assert len(m.keyId) == 36 and m.keyId.count("-") == 4, m.keyId
            assert (m.name, m.owner, m.description, m.phase) == (name, "acme", "the docs' cohort reader", "Active")
            assert m.entitlements[STORE] == ApiKeyEntitlement(scopes=["read"], namespaces=[glob])
            assert m.entitlements["warehouse.prod-snowflake"].claims == ["notes:cohort:*:read"]
            # The client always sends its default `expiresAfter: "365d"`.
            created = when(m.createdAt)
            assert abs(created - datetime.now(timezone.utc)) < timedelta(minutes=5), m.createdAt
            assert m.expiresAfter == "365d" and m.expiresAt is not None
            assert abs(when(m.expiresAt) - created - timedelta(days=365)) < timedelta(seconds=5), m
            lookup = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
            assert extra(m, "lookupHash") == lookup
            # No such warehouse: created anyway, with the condition.
            (cond,) = extra(m, "conditions")
            assert (cond["type"], cond["status"]) == ("EntitlementTargetMissing", "True"), cond
            assert "warehouse.prod-snowflake" in cond["message"]

            # list and get: the ApiKey model, never a token.
            listing = await admin.list_keys()
            assert isinstance(listing, ApiKeyList)
            (listed,) = [k for k in listing.keys if k.keyId == m.keyId]
            got = await admin.get_key(m.keyId)
            for k in (listed, got):
                assert isinstance(k, ApiKey)
                assert (k.name, k.owner, k.phase, k.lookupHash) == (name, "acme", "Active", lookup)
                assert (k.createdAt, k.expiresAt, k.expiresAfter) == (m.createdAt, m.expiresAt, "365d")
                assert k.entitlements == m.entitlements and k.revokedAt is None
                assert "token" not in (k.model_extra or {})
            for model in (listing, got):
                assert token[4:] not in model.model_dump_json()

            # authenticate: unauthenticated (the client without a key sends no Authorization).
            a = await anon.authenticate_key(AuthenticateKeyRequest(token=token))
            assert isinstance(a, AuthenticateKeyResponse)
            assert (a.keyId, a.name, a.owner, a.expiresAt) == (m.keyId, name, "acme", m.expiresAt)
            assert a.entitlements["warehouse.prod-snowflake"].claims == ["notes:cohort:*:read"]
            assert a.entitlements[STORE].namespaces == [glob]
            await refused(lambda: anon.authenticate_key({"token": "hvl_nope"}), 401, "unauthorized")
            await refused(lambda: anon.authenticate_key({"token": "hvl_" + "0" * 43}), 401, "unauthorized")
            # The key routes themselves need the admin bearer.
            await refused(lambda: anon.list_keys(), 401, "unauthorized")

            # A claims-only key authenticates and opens no route.
            claims = await mint(admin, "claims", ents({"warehouse.w": {"claims": ["c"]}}))
            assert (await anon.authenticate_key({"token": claims.token})).entitlements["warehouse.w"].claims == ["c"]
            async with client(keys, claims.token) as ck:
                await refused(lambda: ck.list_namespaces(), 403, SCOPE, required_scope="read")

            # revoke: Revoked at once, idempotent, the record kept.
            async with client(keys, token) as reader:
                assert isinstance(await reader.list_namespaces(prefix=glob[:-1]), NamespaceList)
                r = await admin.revoke_key(m.keyId)
                assert isinstance(r, ApiKey) and r.phase == "Revoked" and r.revokedAt is not None, r
                await refused(lambda: reader.list_namespaces(), 401, "unauthorized")
            await refused(lambda: anon.authenticate_key({"token": token}), 401, "unauthorized")
            again = await admin.revoke_key(m.keyId)
            assert (again.phase, again.revokedAt) == ("Revoked", r.revokedAt)
            assert m.keyId not in [k.keyId for k in (await admin.list_keys()).keys]
            with_revoked = await admin.list_keys(includeRevoked=True)
            assert [k.phase for k in with_revoked.keys if k.keyId == m.keyId] == ["Revoked"]
            assert (await admin.get_key(m.keyId)).phase == "Revoked"

            # delete: hard; then 404 everywhere.
            d = await admin.delete_key(m.keyId)
            assert isinstance(d, StatusResponse) and d.status == "deleted" and extra(d, "keyId") == m.keyId
            await refused(lambda: admin.get_key(m.keyId), 404, "not_found")
            await refused(lambda: admin.revoke_key(m.keyId), 404, "not_found")
            await refused(lambda: admin.delete_key(m.keyId), 404, "not_found")
            assert m.keyId not in [k.keyId for k in (await admin.list_keys(includeRevoked=True)).keys]
            assert_never_logged(keys, token, claims.token)

    run(go())


def test_expiry_never_and_bad_mints(keys):
    async def go():
        async with client(keys) as admin, client(keys, None) as anon:
            forever = await mint(admin, "forever", ents({"layer": {"scopes": ["read"]}}), expiresAfter="never")
            assert (forever.expiresAfter, forever.expiresAt) == ("never", None)
            assert (await admin.get_key(forever.keyId)).expiresAt is None
            assert (await anon.authenticate_key({"token": forever.token})).expiresAt is None

            # A five-second key (not the 365d default) so it runs out within the test, yet still
            # works for its first call on a busy machine.
            short = await mint(admin, "short", ents({"layer": {"scopes": ["read"]}}), expiresAfter="5s")
            assert short.expiresAt is not None
            async with client(keys, short.token) as sc:
                assert isinstance(await sc.list_pipelines(), PipelineList)
                deadline = time.monotonic() + 20.0
                while True:
                    try:
                        await sc.list_pipelines()
                    except HevlayerError as e:
                        assert (e.status_code, e.error) == (401, "unauthorized")
                        break
                    assert time.monotonic() < deadline, "the expired key still works"
                    await asyncio.sleep(0.1)
            await refused(lambda: anon.authenticate_key({"token": short.token}), 401, "unauthorized")
            assert (await admin.get_key(short.keyId)).phase == "Expired"
            assert short.keyId not in [k.keyId for k in (await admin.list_keys()).keys]
            assert [k.phase for k in (await admin.list_keys(includeRevoked=True)).keys if k.keyId == short.keyId] == [
                "Expired"
            ]

            # A taken name is 409; bad input is 422 naming the field (dict bodies: the client's
            # models would refuse some of these before sending them), and nothing is stored.
            await refused(lambda: admin.mint_key(MintKeyRequest(name=forever.name)), 409, "already_exists")
            before = len((await admin.list_keys(includeRevoked=True)).keys)
            for bad, field in (
                ({"entitlements": {"store.x": {}}}, "entitlements.store.x"),
                ({"entitlements": {STORE: {"scopes": ["admin"]}}}, f"entitlements.{STORE}.scopes"),
                ({"entitlements": {STORE: {"namespaces": ["a[b"]}}}, f"entitlements.{STORE}.namespaces"),
                ({"entitlements": {"layer": {"scopes": ["root"]}}}, "entitlements.layer.scopes"),
                ({"expiresAfter": "soon"}, "expiresAfter"),
                ({"name": None, "entitlements": {}}, "name"),
            ):
                body = {"name": fresh("bad", prefix="key"), **bad}
                body = {k: v for k, v in body.items() if v is not None}
                await refused(lambda: admin.mint_key(body), 422, "validation_error", field=field)
            assert len((await admin.list_keys(includeRevoked=True)).keys) == before
            assert_never_logged(keys, forever.token, short.token)

    run(go())


# --------------------------------------------------------------------------------------------
# Minted tokens on the data plane
# --------------------------------------------------------------------------------------------


def test_a_reader_and_a_writer_within_their_grant(keys):
    async def go():
        async with client(keys) as admin:
            glob, inside, outside = await grant_setup(admin, keys)
            reader_key = await mint(admin, "reader", ents({STORE: {"scopes": ["read"], "namespaces": [glob]}}))
            writer_key = await mint(
                admin, "writer", ents({STORE: {"scopes": ["read", "write"], "namespaces": [glob]}})
            )
            # The unfiltered listing (the admin's) has both.
            prefix = glob[:-2]
            listed = {n.name for n in (await admin.list_namespaces(prefix=prefix)).namespaces}
            assert listed == {inside, outside}, listed

            async with client(keys, reader_key.token) as reader, client(keys, writer_key.token) as writer:
                q = {"rank_by": ["id", "asc"], "top_k": 10, "include_attributes": ["color"], "consistency": STRONG}
                # Query, fetch, metadata, listing: within the glob; 403 `namespace` outside it.
                res = await reader.query_namespace(inside, q)
                assert [r["id"] for r in res.rows] == [f"d{i}" for i in range(6)]
                await refused(lambda: reader.query_namespace(outside, q), 403, GRANT, namespace=outside)
                doc = await reader.fetch_document(inside, "d1")
                assert isinstance(doc, Document) and (doc.id, doc.attributes.get("color")) == ("d1", "blue")
                await refused(lambda: reader.fetch_document(outside, "d1"), 403, GRANT, namespace=outside)
                docs = await reader.fetch_documents(inside, FetchDocumentsRequest(ids=["d2", "zz"]))
                assert isinstance(docs, FetchDocumentsResponse)
                assert ([d.id for d in docs.documents], docs.missing) == (["d2"], ["zz"])
                await refused(lambda: reader.fetch_documents(outside, {"ids": ["d2"]}), 403, GRANT, namespace=outside)
                assert (await reader.get_namespace_metadata(inside)).id == inside
                await refused(lambda: reader.get_namespace_metadata(outside), 403, GRANT, namespace=outside)
                names = [n.name for n in (await reader.list_namespaces(prefix=prefix)).namespaces]
                assert names == [inside], names

                # Writes: the reader has no write scope anywhere (the scope is the reason); the
                # writer writes within its glob and is refused outside it (the grant is).
                row = {"upsert_rows": [{"id": "w1", "color": "green", "vector": [0.5, 0.5]}]}
                await refused(lambda: reader.write_namespace(inside, row), 403, SCOPE, required_scope="write")
                await refused(lambda: reader.write_namespace(outside, row), 403, SCOPE, required_scope="write")
                assert (await writer.write_namespace(inside, row)).rows_upserted == 1
                await refused(lambda: writer.write_namespace(outside, row), 403, GRANT, namespace=outside)
                await refused(lambda: writer.delete_namespace(outside), 403, GRANT, namespace=outside)
                assert len((await writer.query_namespace(inside, q)).rows) == 7
                keys.wait_stable(inside)

                # Scans: a count (read-shaped POST) and the job listing.
                count = await reader.create_scan(inside, CreateScanRequest(mode="count"))
                assert isinstance(count, ScanCountResponse) and count.count == 7, count
                count_req = CreateScanRequest(mode="count")
                await refused(lambda: reader.create_scan(outside, count_req), 403, GRANT, namespace=outside)
                assert isinstance(await reader.list_scans(inside), ScanJobList)
                await refused(lambda: reader.list_scans(outside), 403, GRANT, namespace=outside)

                # Snapshots: a job, its listing, history; the policy is written with write.
                job = await reader.create_snapshot(inside, CreateSnapshotRequest(field="color"))
                assert isinstance(job, SnapshotJob) and (job.namespace, job.field) == (inside, "color")
                snap_req = CreateSnapshotRequest(field="color")
                await refused(lambda: reader.create_snapshot(outside, snap_req), 403, GRANT, namespace=outside)
                jobs = await reader.list_snapshot_jobs(inside)
                assert isinstance(jobs, SnapshotJobList) and job.id in [j.id for j in jobs.snapshot_jobs]
                await refused(lambda: reader.list_snapshot_jobs(outside), 403, GRANT, namespace=outside)
                assert isinstance(await reader.list_namespace_history(inside), list)
                await refused(lambda: reader.list_namespace_history(outside), 403, GRANT, namespace=outside)
                policy = SnapshotPolicy(facetFields=["color"])
                await refused(lambda: reader.put_snapshot_policy(inside, policy), 403, SCOPE, required_scope="write")
                assert (await writer.put_snapshot_policy(inside, policy)).facetFields == ["color"]
                await refused(lambda: writer.put_snapshot_policy(outside, policy), 403, GRANT, namespace=outside)
                assert (await reader.get_snapshot_policy(inside)).facetFields == ["color"]
                activity = await reader.list_snapshot_activity(since=0)
                assert all(e.namespace.startswith(prefix + "-") for e in activity.events), activity

                # Search history: the reader's own search is recorded, and reading it is read.
                await reader.query_namespace(inside, q, raw_query="red things", tags=["keys"])
                deadline = time.monotonic() + 10.0
                while True:
                    hist = await reader.list_search_history(inside, tags=["keys"])
                    assert isinstance(hist, SearchHistoryListResponse)
                    if hist.entries:
                        break
                    assert time.monotonic() < deadline, "the search never reached the history"
                    await asyncio.sleep(0.1)
                assert [(e.raw_query, e.namespace) for e in hist.entries] == [("red things", inside)]
                await refused(lambda: reader.list_search_history(outside), 403, GRANT, namespace=outside)

                # Warm: a bodyless POST (read: only the cache is affected) and its job listing.
                warm = await reader.warm_cache(inside)
                assert isinstance(warm, WarmJob) and warm.namespace == inside
                await refused(lambda: reader.warm_cache(outside), 403, GRANT, namespace=outside)
                assert warm.id in [j.id for j in (await reader.list_warm_jobs(inside)).warm_jobs]
                assert isinstance(await writer.list_warm_jobs(inside), WarmJobList)
                await refused(lambda: reader.list_warm_jobs(outside), 403, GRANT, namespace=outside)

                # A data-plane key opens no control-plane route.
                await refused(lambda: writer.list_pipelines(), 403, SCOPE, required_scope="read")
                await refused(lambda: writer.list_udfs(), 403, SCOPE, required_scope="read")

            # The glob is all the grant: the admin still reaches both namespaces.
            assert len((await admin.query_namespace(outside, q)).rows) == 6
            assert_never_logged(keys, reader_key.token, writer_key.token)

    run(go())


# --------------------------------------------------------------------------------------------
# Minted tokens on the control plane
# --------------------------------------------------------------------------------------------


def test_control_plane_needs_the_layer_entitlement(keys):
    async def go():
        async with client(keys) as admin:
            glob, inside, outside = await grant_setup(admin, keys)
            store_key = await mint(admin, "store-rw", ents({STORE: {"scopes": ["read", "write"]}}))
            ops_key = await mint(admin, "ops-read", ents({"layer": {"scopes": ["read"]}}))
            scoped_key = await mint(
                admin, "scoped-admin", ents({"layer": {"scopes": ["admin"], "namespaces": [glob]}})
            )
            tokens = [store_key.token, ops_key.token, scoped_key.token]
            pid_out = fresh("kpipe-out")
            await admin.create_pipeline(CreatePipelineRequest(id=pid_out, target_namespace=outside))

            async with client(keys, store_key.token) as store, client(keys, ops_key.token) as ops, client(
                keys, scoped_key.token
            ) as scoped:
                # Pipelines: a vectorstore-only key (even read+write on every namespace) is refused.
                await refused(lambda: store.list_pipelines(), 403, SCOPE, required_scope="read")
                await refused(lambda: store.get_pipeline_status(pid_out), 403, SCOPE, required_scope="read")
                await refused(
                    lambda: store.create_pipeline(CreatePipelineRequest(id=fresh("kp"), target_namespace=inside)),
                    403,
                    SCOPE,
                    required_scope="admin",
                )
                # `layer: read` lists and reads, and does not create.
                assert pid_out in [p.id for p in (await ops.list_pipelines()).pipelines]
                assert (await ops.get_pipeline_status(pid_out)).pending_count == 0
                await refused(
                    lambda: ops.create_pipeline(CreatePipelineRequest(id=fresh("kp"), target_namespace=inside)),
                    403,
                    SCOPE,
                    required_scope="admin",
                )
                await refused(lambda: ops.delete_pipeline(pid_out), 403, SCOPE, required_scope="admin")
                # `layer: admin` on a glob: pipelines on its namespaces only.
                pid_in = fresh("kpipe-in")
                created = await scoped.create_pipeline(CreatePipelineRequest(id=pid_in, target_namespace=inside))
                assert isinstance(created, Pipeline) and created.target_namespace == inside
                await refused(
                    lambda: scoped.create_pipeline(CreatePipelineRequest(id=fresh("kp"), target_namespace=outside)),
                    403,
                    GRANT,
                    namespace=outside,
                )
                seen = [p.id for p in (await scoped.list_pipelines()).pipelines]
                assert pid_in in seen and pid_out not in seen, seen
                await refused(lambda: scoped.get_pipeline_status(pid_out), 403, GRANT, namespace=outside)
                await refused(lambda: scoped.delete_pipeline(pid_out), 403, GRANT, namespace=outside)
                assert (await scoped.delete_pipeline(pid_in)).status == "deleted"
                # Its data plane is limited to the glob too.
                q = {"rank_by": ["id", "asc"], "top_k": 10, "consistency": STRONG}
                assert len((await scoped.query_namespace(inside, q)).rows) == 6
                await refused(lambda: scoped.query_namespace(outside, q), 403, GRANT, namespace=outside)

                # UDFs: the same rules.
                spec = UdfSpec(target_namespaces=[inside], inputs=["id", "color"], worker=UdfWorkerSpec())
                await refused(lambda: store.list_udfs(), 403, SCOPE, required_scope="read")
                assert isinstance(await ops.list_udfs(), UdfList)
                new_udf = CreateUdfRequest(id=fresh("ku"), spec=spec)
                await refused(lambda: ops.create_udf(new_udf), 403, SCOPE, required_scope="admin")
                outside_spec = UdfSpec(target_namespaces=[outside], inputs=["id"], worker=UdfWorkerSpec())
                out_udf = CreateUdfRequest(id=fresh("ku"), spec=outside_spec)
                await refused(lambda: scoped.create_udf(out_udf), 403, GRANT, namespace=outside)
                uid = fresh("ku")
                udf = await scoped.create_udf(CreateUdfRequest(id=uid, spec=spec))
                assert isinstance(udf, Udf) and udf.spec.target_namespaces == [inside]
                got = await ops.get_udf(uid)
                assert isinstance(got, GetUdfResponse) and got.udf.id == uid
                await refused(lambda: ops.pause_udf(uid), 403, SCOPE, required_scope="admin")
                await refused(lambda: store.get_udf(uid), 403, SCOPE, required_scope="read")
                assert (await scoped.delete_udf(uid)).status == "deleted"

                # Keys: only `layer: admin` manages keys; a vectorstore or `layer: read` key cannot.
                body = MintKeyRequest(name=fresh("nope", prefix="key"))
                await refused(lambda: store.mint_key(body), 403, SCOPE, required_scope="admin")
                await refused(lambda: ops.mint_key(body), 403, SCOPE, required_scope="admin")
                await refused(lambda: ops.list_keys(), 403, SCOPE, required_scope="admin")
                await refused(lambda: ops.get_key(ops_key.keyId), 403, SCOPE, required_scope="admin")
                await refused(lambda: ops.revoke_key(ops_key.keyId), 403, SCOPE, required_scope="admin")
                await refused(lambda: ops.delete_key(ops_key.keyId), 403, SCOPE, required_scope="admin")
                assert (await admin.get_key(ops_key.keyId)).phase == "Active"

            # The bootstrap: the store credential mints an admin, which mints and revokes keys.
            root = await mint(admin, "ops-admin", ents({"layer": {"scopes": ["admin"]}}), expiresAfter="never")
            tokens.append(root.token)
            async with client(keys, root.token) as rc:
                minted = await mint(rc, "by-admin", ents({STORE: {"scopes": ["read"], "namespaces": [glob]}}))
                tokens.append(minted.token)
                assert minted.keyId in [k.keyId for k in (await rc.list_keys()).keys]
                # `layer: admin` opens every store's data plane too.
                assert len((await rc.query_namespace(outside, q)).rows) == 6
                assert (await rc.revoke_key(minted.keyId)).phase == "Revoked"
                assert (await rc.delete_key(minted.keyId)).status == "deleted"
            await admin.delete_pipeline(pid_out)
            assert_never_logged(keys, *tokens)

    run(go())


# --------------------------------------------------------------------------------------------
# Tokens stay secret
# --------------------------------------------------------------------------------------------


def test_tokens_never_reach_the_log_or_the_metrics(keys):
    """One token used every way the client can: admitted, refused (403), authenticated, revoked
    (401 on a route and on authenticate), then deleted; neither it nor a second (never revoked)
    token is in the gateway's log, ``GET /metrics`` or any error body."""

    async def go():
        async with client(keys) as admin, client(keys, None) as anon:
            glob, inside, outside = await grant_setup(admin, keys)
            a = await mint(admin, "secret-a", ents({STORE: {"scopes": ["read"], "namespaces": [glob]}}))
            b = await mint(admin, "secret-b", ents({"layer": {"scopes": ["read"]}}))
            bodies: list[str] = []
            async with client(keys, a.token) as ca, client(keys, b.token) as cb:
                q = {"rank_by": ["id", "asc"], "top_k": 10, "consistency": STRONG}
                assert len((await ca.query_namespace(inside, q)).rows) == 6
                assert isinstance(await cb.list_pipelines(), PipelineList)
                for call in (
                    refused(lambda: ca.query_namespace(outside, q), 403, GRANT, namespace=outside),
                    refused(lambda: ca.write_namespace(inside, {"upsert_rows": [{"id": "x"}]}), 403, SCOPE),
                    refused(lambda: ca.list_pipelines(), 403, SCOPE),
                    refused(lambda: cb.query_namespace(inside, q), 403, SCOPE),
                    refused(lambda: cb.mint_key({"name": fresh("x")}), 403, SCOPE),
                ):
                    bodies.append((await call).response.text)
                assert (await anon.authenticate_key({"token": a.token})).keyId == a.keyId
                await admin.revoke_key(a.keyId)
                for call in (
                    refused(lambda: ca.query_namespace(inside, q), 401, "unauthorized"),
                    refused(lambda: anon.authenticate_key({"token": a.token}), 401, "unauthorized"),
                ):
                    bodies.append((await call).response.text)
            await admin.delete_key(a.keyId)
            for text in bodies:
                assert a.token[4:] not in text and b.token[4:] not in text, text
            assert_never_logged(keys, a.token, b.token)

    run(go())


# --------------------------------------------------------------------------------------------
# A gateway bug the client meets: an early refusal closes the connection
# --------------------------------------------------------------------------------------------


def post_then_health(url: str, token: str, path: str, body: dict[str, Any]) -> tuple[str, Optional[str], str]:
    """One POST on a fresh connection sent the way httpcore sends it (the headers, then the body
    in a second write; here 5 ms later, like a body still in flight), its answer read in full,
    then ``GET /health`` on the same connection. Returns the answer's status line, its
    ``connection`` header and the status line the second request got (``"closed"`` if none)."""
    u = urlparse(url)
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {u.netloc}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((u.hostname, u.port), timeout=5.0) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head)
        time.sleep(0.005)
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"no answer to {path}"
            buf += chunk
        raw_head, rest = buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(rest) < int(headers.get("content-length", "0")):
            rest += s.recv(65536)
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            second = s.recv(65536).split(b"\r\n", 1)[0].decode() or "closed"
        except OSError:
            second = "closed"
    return lines[0], headers.get("connection"), second


def test_an_early_refusal_keeps_the_connection_usable(keys):
    async def go():
        async with client(keys) as admin:
            glob = fresh("conn") + "-*"
            reader = await mint(admin, "conn", ents({STORE: {"scopes": ["read"], "namespaces": [glob]}}))
        q = {"rank_by": ["id", "asc"], "top_k": 1}
        # The control: an answer given after the body was read keeps the connection.
        missing = fresh("missing")
        line, _, second = post_then_health(keys.api_url, API_KEY, f"/v2/namespaces/{missing}/query", q)
        assert (line, second) == ("HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK")
        results = []
        for _ in range(2):
            for token, path, status in (
                (reader.token, f"/v2/namespaces/{fresh('outside')}/query", "HTTP/1.1 403 Forbidden"),
                (reader.token, f"/v2/namespaces/{glob[:-1]}a", "HTTP/1.1 403 Forbidden"),
                ("hvl_" + "0" * 43, f"/v2/namespaces/{glob[:-1]}a/query", "HTTP/1.1 401 Unauthorized"),
            ):
                line, connection, second = post_then_health(keys.api_url, token, path, q)
                assert line == status, (path, line)
                results.append((path, connection, second))
        assert_never_logged(keys, reader.token)
        # Either the connection stays usable or the answer says it will not.
        broken = [r for r in results if r[1] != "close" and r[2] != "HTTP/1.1 200 OK"]
        assert not broken, broken

    run(go())
