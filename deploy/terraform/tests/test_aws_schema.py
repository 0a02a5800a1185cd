"""Every aws_* resource and data block of deploy/terraform checked against the hashicorp/aws
provider's schema (aws_schema.py: 6.25.0's, from the prebuilt CDKTF bindings), as far as
`terraform validate` would without the provider binary: each argument and nested block exists,
blocks are written as blocks and arguments as arguments, required arguments are set, and every
`aws_x.name.attr` an expression reads is an attribute of that resource type."""

from __future__ import annotations

import json
import os
import pathlib
import re

import hcl2
import pytest
from hcl2 import SerializationOptions

from aws_schema import AwsSchema
from test_terraform import TF, need

META = {"count", "for_each", "depends_on", "lifecycle", "provider", "dynamic"}
OPTS = SerializationOptions(with_comments=False, explicit_blocks=True, preserve_heredocs=False, strip_string_quotes=True)


HERE = pathlib.Path(__file__).resolve().parent
PINNED = re.search(
    r"^cdktf-cdktf-provider-aws==(\S+)$", (HERE / "aws-schema-requirements.txt").read_text(), re.M
).group(1)
PROVIDER_VERSION = "6.25.0"  # the hashicorp/aws release those bindings were generated from


def wheel_path() -> str | None:
    d = os.environ.get("LAYER_WHEELS_DIR", os.path.expanduser("~/.cache/layer/wheels"))
    found = sorted(pathlib.Path(d).glob(f"cdktf_cdktf_provider_aws-{PINNED}-*.whl"))
    return str(found[0]) if found else None


@pytest.fixture(scope="module")
def schema() -> AwsSchema:
    wheel = need(f"cdktf-cdktf-provider-aws {PINNED} wheel (scripts/test downloads it)", wheel_path(), executable=False)
    s = AwsSchema(wheel)
    assert f"/hashicorp/aws/{PROVIDER_VERSION}/" in json.dumps(s.types["@cdktf/provider-aws.provider.AwsProvider"]["docs"])
    return s


def test_the_version_constraint_admits_the_checked_provider():
    text = (TF / "versions.tf").read_text()
    m = re.search(r'aws = \{\s*source\s*=\s*"hashicorp/aws"\s*version\s*=\s*">= ([\d.]+), < ([\d.]+)"', text)
    assert m, "versions.tf: aws = { source, version = \">= a, < b\" }"
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(m.group(1)) <= as_tuple(PROVIDER_VERSION) < as_tuple(m.group(2))
    assert as_tuple(m.group(1))[0] == as_tuple(PROVIDER_VERSION)[0], "the schema checked is one major version"


def blocks() -> list[tuple[str, str, str, bool, dict]]:
    out = []
    for f in sorted(TF.glob("*.tf")):
        with f.open() as fh:
            d = hcl2.load(fh, serialization_options=OPTS)
        for kind in ("resource", "data"):
            for block in d.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        if rtype.startswith("aws_"):
                            out.append((f.name, rtype, name, kind == "data", body))
    return out


def is_block(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) and x.get("__is_block__") for x in v)


def check_body(schema: AwsSchema, args: dict, body: dict, where: str, top: bool = True) -> list[str]:
    """top: the block's own body, where the meta-arguments live (a nested block may have an
    argument named like one, e.g. encryption_config's provider block)."""
    problems = []
    present = set()
    for key, value in body.items():
        if key.startswith("__") or (key in META and (top or key == "dynamic")):
            continue
        present.add(key)
        arg = args.get(key)
        if arg is None:
            problems.append(f"{where}: unknown argument or block {key!r}")
        elif arg.block:
            if not is_block(value):
                problems.append(f"{where}: {key!r} is a block, written as an argument")
                continue
            if not arg.is_list and len(value) > 1:
                problems.append(f"{where}: {key!r} takes one block, got {len(value)}")
            for i, item in enumerate(value):
                problems += check_body(schema, schema.struct(arg.block), item, f"{where}.{key}[{i}]", top=False)
        elif is_block(value):
            problems.append(f"{where}: {key!r} is an argument, written as a block")
    for dyn in body.get("dynamic", []) if isinstance(body.get("dynamic"), list) else []:
        for key, spec in dyn.items():
            if key.startswith("__"):
                continue
            present.add(key)
            arg = args.get(key)
            if arg is None or not arg.block:
                problems.append(f"{where}: dynamic {key!r} is not a nested block")
                continue
            content = spec.get("content", [])
            for item in content if isinstance(content, list) else [content]:
                problems += check_body(schema, schema.struct(arg.block), item, f"{where}.dynamic.{key}", top=False)
    for name, arg in args.items():
        if arg.required and name not in present:
            problems.append(f"{where}: required {name!r} is not set")
    return problems


def test_every_aws_block_matches_the_provider_schema(schema):
    all_blocks = blocks()
    assert len(all_blocks) > 60
    problems = []
    for fname, rtype, name, data, body in all_blocks:
        args = schema.config(rtype, data)
        if args is None:
            problems.append(f"{fname}: {'data source' if data else 'resource'} type {rtype} does not exist")
            continue
        problems += check_body(schema, args, body, f"{fname}: {rtype}.{name}")
    assert not problems, "\n".join(problems)


REF = re.compile(r"(?<![\w.])(data\.)?(aws_[a-z0-9_]+)\.([a-z0-9_]+)(?:\[[^\]]+\])?\.([a-z0-9_]+)")


def test_every_attribute_an_expression_reads_exists(schema):
    declared = {(data, rtype, name) for _, rtype, name, data, _ in blocks()}
    problems, seen = [], 0
    for f in sorted(TF.glob("*.tf")):
        for m in REF.finditer(f.read_text()):
            data, rtype, name, attr = bool(m.group(1)), m.group(2), m.group(3), m.group(4)
            if (data, rtype, name) not in declared:
                problems.append(f"{f.name}: {m.group(0)} names no block of this configuration")
                continue
            attrs = schema.attributes(rtype, data)
            seen += 1
            if attrs is None or attr not in attrs:
                problems.append(f"{f.name}: {m.group(0)}: {rtype} has no attribute {attr!r}")
    assert seen > 80
    assert not problems, "\n".join(problems)


def test_the_schema_check_is_no_blanket_pass(schema, tmp_path):
    args = schema.config("aws_eks_node_group")
    body = {
        "cluster_name": "x",
        "node_role_arn": "y",
        "subnet_ids": ["a"],
        "lables": {"k": "v"},  # misspelt
        "scaling_config": {"desired_size": 1},  # a block written as an argument
    }
    problems = check_body(schema, args, body, "t")
    assert any("unknown argument or block 'lables'" in p for p in problems), problems
    assert any("'scaling_config' is a block, written as an argument" in p for p in problems), problems
    problems = check_body(schema, args, {"cluster_name": "x"}, "t")
    assert any("required 'node_role_arn'" in p for p in problems), problems
    assert schema.config("aws_no_such_thing") is None
    assert "endpoint" in schema.attributes("aws_eks_cluster") and "endpoints" not in schema.attributes("aws_eks_cluster")
