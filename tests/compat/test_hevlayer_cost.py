"""The published ``hevlayer`` 0.7.3 client's three cost methods against the gateway.

``get_cost_rate_card``, ``get_cost_snapshot`` and ``get_cost_timeseries`` parse into the
client's own models (``RateCard``, ``CostSnapshot``, ``CostTimeseries``: every required field
present, ``aws_cost_source`` = ``cost_explorer``, ``role`` = ``estimator``, ``source`` =
``invoice``, lines with ``provider``/``basis`` from the client's literals).

The session gateway runs at the defaults (no rate card, Cost Explorer off): every method gets
503 ``cost_unavailable`` naming what is missing. For the rest this module starts a second
gateway (fixture ``cost_gateway``, in front of the same emulator) from a ``layer.yaml`` with a
rate-card file and moto's Cost Explorer (the moto ``scripts/s3-server`` started:
``LAYER_TEST_S3_ENDPOINT``), seeded through moto's API with amounts the snapshot must report.
Without moto these tests skip, except under CI where they fail. Other suites are unaffected: only
this module starts that gateway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
import time
import uuid

import httpx
import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import CostSnapshot, CostTimeseries, RateCard

from compat_helpers import API_KEY, fresh, run
from conftest import _Server

CARD = """\
version: compat-2026-01
source: invoice
verifiedBy: compat
verifiedAt: "2026-01-05"
lines:
  - {service: queries, unit: 1k queries, usd: 4.0}
  - {service: writes, unit: KB, usd: 0.002}
  - {service: storage, unit: GiB-month, usd: 0.33}
"""

EC2 = "Amazon Elastic Compute Cloud - Compute"


def _moto() -> str:
    endpoint = os.environ.get("LAYER_TEST_S3_ENDPOINT", "")
    if not endpoint:
        if os.environ.get("CI") == "true":
            pytest.fail("LAYER_TEST_S3_ENDPOINT is unset under CI: scripts/test starts moto")
        pytest.skip("no moto for Cost Explorer (LAYER_TEST_S3_ENDPOINT unset; scripts/s3-server starts one)")
    return endpoint


def _drain_moto_ce(moto: str) -> None:
    """Empties moto's queue of seeded Cost Explorer results (moto hands them out in order, and a
    run that stopped before its gateway read leaves its seed queued): asks with a new body each
    time until the answer is empty. moto routes by the credential scope of ``authorization`` and
    checks no signature."""
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "AWSInsightsIndexService.GetCostAndUsage",
        "authorization": "AWS4-HMAC-SHA256 Credential=moto/20200101/us-east-1/ce/aws4_request, SignedHeaders=host, Signature=0",
    }
    for _ in range(100):
        body = {
            "TimePeriod": {"Start": "2020-01-01", "End": "2020-01-02"},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"],
            "Filter": {"Tags": {"Key": "layer-compat-drain", "Values": [uuid.uuid4().hex]}},
        }
        r = httpx.post(f"{moto}/", headers=headers, content=json.dumps(body))
        assert r.status_code == 200, r.text
        if not r.json().get("ResultsByTime"):
            return
    pytest.fail("moto's Cost Explorer queue did not drain")


@pytest.fixture(scope="module")
def cost_gateway(target):
    """A gateway with a rate card and moto's Cost Explorer, seeded; yields its URL."""
    if not target.is_gateway:
        pytest.skip("hevlayer tests run against the gateway (LAYER_COMPAT_TARGET=gateway)")
    moto = _moto()
    today = dt.datetime.now(dt.timezone.utc).date()

    def day(ago: int, groups):
        start = today - dt.timedelta(days=ago)
        return {
            "TimePeriod": {"Start": start.isoformat(), "End": (start + dt.timedelta(days=1)).isoformat()},
            "Total": {},
            "Groups": [
                {"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": usd, "Unit": "USD"}}}
                for service, usd in groups
            ],
            "Estimated": False,
        }

    _drain_moto_ce(moto)
    seeded = {"results": [{"ResultsByTime": [day(3, [(EC2, "7.5")]), day(2, [(EC2, "2.5")])], "DimensionValueAttributes": []}]}
    r = httpx.post(f"{moto}/moto-api/static/ce/cost-and-usage-results", json=seeded)
    assert r.status_code == 201, r.text
    work = tempfile.mkdtemp(prefix="compat-cost-")
    card = os.path.join(work, "rate-card.yaml")
    with open(card, "w") as f:
        f.write(CARD)
    config = {
        "gateway": {
            "cost": {
                "rateCardFile": card,
                "costExplorerEnabled": True,
                "endpoint": moto,
                # moto answers a request body it has not seen from the seeded queue: a tag
                # value unique to this session makes the gateway's body new.
                "tagKey": "layer-compat",
                "tagValue": f"run-{uuid.uuid4().hex}",
                "instancePrices": [
                    {"instanceType": "i4i.large", "family": "i4i", "vcpu": 2, "memoryGib": 16, "nvmeGib": 468, "hourlyUsd": 0.172}
                ],
            }
        }
    }
    path = os.path.join(work, "layer.yaml")
    with open(path, "w") as f:
        json.dump(config, f)  # JSON is YAML
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "moto")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "moto")
    gw = _Server(
        "layer-gateway-cost",
        [
            os.environ["LAYER_GATEWAY_BIN"],
            "--config", path,
            "--listen", "127.0.0.1:0",
            "--upstream-url", target.emu_url,
            "--upstream-api-key", API_KEY,
            "--data-dir", tempfile.mkdtemp(prefix="compat-gateway-cost-"),
        ],
        env=env,
    )
    gw.start()
    try:
        yield gw.url
    finally:
        gw.stop()


def test_cost_routes_answer_503_without_a_rate_card_or_aws(layer):
    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url) as c:
            for call in (
                c.get_cost_snapshot(window="1h"),
                c.get_cost_timeseries(window="1h", step="5m"),
            ):
                with pytest.raises(HevlayerError) as e:
                    await call
                assert (e.value.status_code, e.value.error) == (503, "cost_unavailable")
                assert "gateway.cost.rateCardFile" in e.value.message
                assert "costExplorerEnabled" in e.value.message
            with pytest.raises(HevlayerError) as e:
                await c.get_cost_rate_card()
            assert (e.value.status_code, e.value.error) == (503, "cost_unavailable")
            assert "rate card" in e.value.message

    run(go())


def test_cost_methods_parse_into_the_client_models(cost_gateway):
    ns = fresh("cost")

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=cost_gateway) as c:
            card = await c.get_cost_rate_card()
            assert isinstance(card, RateCard)
            assert (card.turbopuffer.version, card.turbopuffer.source) == ("compat-2026-01", "invoice")
            assert [(l.service, l.unit, l.usd) for l in card.turbopuffer.lines][0] == ("queries", "1k queries", 4.0)
            assert card.aws.role == "estimator" and card.aws.stale is True
            assert [(i.instance_type, i.hourly_usd) for i in card.aws.items] == [("i4i.large", 0.172)]

            await c.write_namespace(ns, {"upsert_rows": [{"id": i, "vector": [float(i), 1.0]} for i in range(5)], "distance_metric": "euclidean_squared"})
            # The first Cost Explorer read happens at start; wait for it.
            deadline = time.monotonic() + 30
            while True:
                try:
                    snap = await c.get_cost_snapshot(window="30d")
                    break
                except HevlayerError as e:
                    assert e.status_code == 503, e.message
                    assert time.monotonic() < deadline, e.message
                    await asyncio.sleep(0.2)
            assert isinstance(snap, CostSnapshot)
            assert snap.window_seconds == 30 * 86400
            aws = {l.service: l for l in snap.lines if l.provider == "aws"}
            assert abs(aws[EC2].amount_usd - 10.0) < 1e-9 and aws[EC2].basis == "metered"
            tpuf = {l.service: l for l in snap.lines if l.provider == "turbopuffer"}
            assert set(tpuf) == {"queries", "writes", "storage"}
            assert tpuf["writes"].qty_bytes > 0 and tpuf["writes"].amount_usd > 0
            assert all(l.basis == "estimate" and l.rate_card_version == "compat-2026-01" for l in tpuf.values())
            assert abs(snap.totals.aws_usd - 10.0) < 1e-9
            assert abs(snap.totals.total_usd - (snap.totals.aws_usd + snap.totals.turbopuffer_usd)) < 1e-9
            st = snap.rate_card_status
            assert (st.aws_cost_source, st.aws_cost_stale, st.turbopuffer_rate_card_version) == ("cost_explorer", False, "compat-2026-01")
            assert st.aws_cost_refreshed_at_ms > 0
            assert snap.caveats

            ts = await c.get_cost_timeseries(window="7d", step="1d")
            assert isinstance(ts, CostTimeseries)
            assert (ts.window_seconds, ts.step_seconds) == (7 * 86400, 86400)
            ec2 = [s for s in ts.series if s.provider == "aws" and s.service == EC2]
            assert len(ec2) == 1 and len(ec2[0].samples) == 7
            assert abs(sum(v for _, v in ec2[0].samples) - 10.0) < 1e-9
            # Defaults (no parameters sent): 24h by 1h.
            ts = await c.get_cost_timeseries()
            assert (ts.window_seconds, ts.step_seconds) == (86400, 3600)

            with pytest.raises(HevlayerError) as e:
                await c.get_cost_snapshot(window="2h")  # type: ignore[arg-type]
            assert (e.value.status_code, e.value.error) == (422, "validation_error")

    run(go())
