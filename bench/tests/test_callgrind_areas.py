"""bench/callgrind_areas.py on hand-written callgrind dumps (the format valgrind 3.19 writes
with --dump-instr=no and name compression)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import callgrind_areas as ca  # noqa: E402

# main (no area) calls the upstream client and hyper's server; both call httparse (shared code):
# the client's calls into it cost 300 instructions, the server's 100. The history writer calls a
# JSON function. Self costs: main 10, client 50, server 20, httparse 400, history 30, JSON 90.
DUMP = """\
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 600

fl=(1) src/main.rs
fn=(1) main
1 10
cfn=(2) layer_gateway::core::h1::Conn::read
calls=1 0
2 350
cfn=(3) <hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::parse
calls=2 0
+1 120
cfn=(5) layer_gateway::features::history::writer::Writer::handle
calls=1 0
3 120

fn=(2)
5 50
cfn=(4) httparse::parse_headers
calls=3 0
6 300

fn=(3)
7 20
cfn=(4)
calls=1 0
8 100

fn=(4)
9 400

fn=(5)
10 30
cfn=(6) sonic_rs::parser::Parser::skip_one
calls=4 0
11 90

fn=(6)
12 90
"""


@pytest.fixture()
def dump(tmp_path):
    path = tmp_path / "x.callgrind"
    path.write_text(DUMP)
    return path


def test_self_costs_and_edges_are_parsed(dump):
    names, self_cost, edges = ca.parse(str(dump))
    assert names["4"] == "httparse::parse_headers"
    assert self_cost == {"1": 10, "2": 50, "3": 20, "4": 400, "5": 30, "6": 90}
    assert edges[("2", "4")] == 300 and edges[("3", "4")] == 100 and edges[("1", "2")] == 350


def test_shared_code_is_charged_to_its_callers_by_call_cost(dump):
    by_area, unattributed = ca.attribute(*ca.parse(str(dump)))
    assert by_area["upstream client"] == pytest.approx(50 + 300)
    assert by_area["HTTP server"] == pytest.approx(20 + 100)
    assert by_area["search history"] == pytest.approx(30)
    assert by_area["JSON"] == pytest.approx(90)
    # main has no area and no caller: it is reported, not hidden in an area.
    assert by_area["other"] == pytest.approx(10) and unattributed == {"main": pytest.approx(10)}
    assert sum(by_area.values()) == pytest.approx(600)


def test_json_is_split_by_the_area_it_serves(dump):
    json_for, _ = ca.attribute(*ca.parse(str(dump)), through=frozenset({"JSON"}))
    assert json_for == {"search history": pytest.approx(90)}


def test_a_call_cycle_without_an_area_ends_in_other(tmp_path):
    # a <-> b call each other; nothing above them has an area.
    path = tmp_path / "cycle.callgrind"
    path.write_text("events: Ir\nfn=(1) a\n1 5\ncfn=(2) b\ncalls=1 0\n1 7\nfn=(2)\n1 7\ncfn=(1)\ncalls=1 0\n1 5\n")
    by_area, _ = ca.attribute(*ca.parse(str(path)))
    assert by_area == {"other": pytest.approx(12)}


def test_the_table_per_request(dump):
    out = subprocess.run(
        [sys.executable, str(BENCH / "callgrind_areas.py"), str(dump), "2", "--top", "3"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "| upstream client | 0.2k | 58.3% |" in out
    assert "| — JSON for search history | 0.0k | |" not in out  # under 50 per request: left out
    assert "| **all** | **0.3k** | 100% |" in out
    assert "- 5 `main`" in out


def test_requests_must_be_positive(dump):
    r = subprocess.run([sys.executable, str(BENCH / "callgrind_areas.py"), str(dump), "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "requests must be positive" in r.stderr


def test_nginx_functions_are_their_own_area():
    # NGINX=1 profiles nginx beside the gateway: its named functions are one area; the allocator
    # rule still comes first, and no gateway function matches the nginx rule.
    assert ca.area_of("ngx_http_parse_header_line") == "nginx"
    assert ca.area_of("ngx_palloc") == "nginx"
    assert ca.area_of("malloc") == "allocator"
    assert ca.area_of("layer_gateway::core::h1_server::parse") == "HTTP server"
    assert ca.area_of("layer_gateway::features::ngx_like::f") == "other gateway code"
