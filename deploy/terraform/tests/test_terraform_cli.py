"""`terraform validate` and `terraform test` (plan.tftest.hcl: plans of the default fresh cluster,
an existing cluster, and NAT + taint + public DNS, with mocked providers) run for real, against
the schema-only provider in schema_provider/ (the registry's provider binaries cannot be fetched
here; see schema_provider/README.md)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from test_terraform import TF, need, terraform
from test_aws_schema import wheel_path

HERE = pathlib.Path(__file__).resolve().parent
SP = HERE / "schema_provider"
sys.path.insert(0, str(SP))


@pytest.fixture(scope="module")
def provider_env(tmp_path_factory) -> dict:
    import build_schemas

    python = need(
        "the schema provider's python (LAYER_TFPROVIDER_PYTHON, made by scripts/test)",
        os.environ.get("LAYER_TFPROVIDER_PYTHON") or os.path.expanduser("~/.cache/layer/venv-tfprovider/bin/python"),
    )
    wheel = need("cdktf-cdktf-provider-aws wheel (scripts/test downloads it)", wheel_path(), executable=False)
    root = tmp_path_factory.mktemp("tfprovider")
    stubs = root / "stubs"
    stubs.mkdir()
    shutil.copy(SP / "tfplugin5.8.proto", stubs / "tfplugin5.proto")
    r = subprocess.run(
        [python, "-m", "grpc_tools.protoc", f"-I{stubs}", f"--python_out={stubs}", f"--grpc_python_out={stubs}", str(stubs / "tfplugin5.proto")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    build_schemas.build(TF, wheel, root / "schemas")
    overrides = []
    for name in ["aws", "helm", "tls"]:
        d = root / "bin" / name
        d.mkdir(parents=True)
        exe = d / f"terraform-provider-{name}"
        exe.write_text(f"#!/bin/sh\nexec {python} {SP / 'server.py'} {root / 'schemas' / (name + '.json')}\n")
        exe.chmod(0o755)
        overrides.append(f'    "hashicorp/{name}" = "{d}"')
    cli = root / "cli.tfrc"
    cli.write_text("provider_installation {\n  dev_overrides {\n" + "\n".join(overrides) + "\n  }\n  direct {}\n}\n")
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli),
        "TF_DISABLE_PLUGIN_TLS": "1",  # the plugin speaks plain gRPC on loopback
        "LAYER_TFPLUGIN_STUBS": str(stubs),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
    }


def run(args, cwd, env):
    return subprocess.run([terraform(), *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_terraform_validate(provider_env):
    r = run(["validate"], TF, provider_env)
    assert r.returncode == 0 and "The configuration is valid" in r.stdout, r.stdout + r.stderr
    assert not (TF / ".terraform").exists() and not (TF / ".terraform.lock.hcl").exists()


def test_terraform_validate_uses_the_provider_schemas(provider_env, tmp_path):
    """No blanket pass: an unknown argument and an attribute the provider does not have fail."""
    copy = tmp_path / "tf"
    shutil.copytree(TF, copy, ignore=shutil.ignore_patterns("tests"))
    eks = (copy / "eks.tf").read_text()
    (copy / "eks.tf").write_text(eks.replace("  labels = {", "  lables = {", 1))
    main = (copy / "main.tf").read_text()
    (copy / "main.tf").write_text(main.replace("aws_eks_cluster.this[0].endpoint,", "aws_eks_cluster.this[0].endpointz,", 1))
    r = run(["validate"], copy, provider_env)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0
    assert 'An argument named "lables" is not expected here' in out, out
    assert 'This object has no argument, nested block, or exported attribute named "endpointz"' in out, out


def test_terraform_test_plans(provider_env):
    r = run(["test"], TF, provider_env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for name in ["fresh_cluster_defaults", "existing_cluster", "existing_cluster_needs_its_name", "nat_taint_and_public_dns"]:
        assert f'run "{name}"... pass' in out, out
    assert "4 passed, 0 failed" in out, out
