"""deploy/terraform: formatting (terraform fmt), structure (every file parsed with python-hcl2),
static checks (checkov), and its Helm values evaluated by terraform itself and fed to the real
chart (helm-python-sdk).

The files that compute the Helm values and the service account names (helm_values.tf,
service_accounts.tf) read only variables and one local of resource attributes, so `terraform
console` evaluates them with stand-in attributes, per scenario, without any provider.
`terraform validate` and the mocked plans are in test_terraform_cli.py; the provider schema check
in test_aws_schema.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

HERE = pathlib.Path(__file__).resolve().parent
TF = HERE.parent
CHART = TF.parent / "helm" / "layer"
sys.path.insert(0, str(TF.parent / "helm" / "tests"))

CI = os.environ.get("CI") == "true"
NODE_ROLE = "layer.hev.dev/node-role"


def need(tool: str, path: str | None, executable: bool = True):
    """A missing tool skips locally and fails under CI (scripts/test installs what it can)."""
    if path and (os.access(path, os.X_OK) or shutil.which(path) if executable else os.path.isfile(path)):
        return path
    if CI:
        pytest.fail(f"{tool} is missing (CI=true: the Terraform tests must not be skipped)")
    pytest.skip(f"{tool} not found")


def terraform() -> str:
    return need("terraform", os.environ.get("LAYER_TERRAFORM") or shutil.which("terraform"))


def tf_env() -> dict:
    # No ~/.terraformrc here; no checkpoint calls to the outside.
    return {**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


# --- parsing ----------------------------------------------------------------------------------------

OPTS = SerializationOptions(
    with_comments=False, explicit_blocks=False, preserve_heredocs=False, strip_string_quotes=True
)


def parse(path: pathlib.Path) -> dict:
    with path.open() as f:
        return hcl2.load(f, serialization_options=OPTS)


class Config:
    def __init__(self):
        self.resources: dict[tuple[str, str], dict] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.variables: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        self.locals: dict[str, object] = {}
        self.file_of: dict[tuple[str, str], str] = {}
        for f in sorted(TF.glob("*.tf")):
            d = parse(f)
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for block in d.get(kind, []):
                    for rtype, named in block.items():
                        for name, body in named.items():
                            target[(rtype, name)] = body
                            if kind == "resource":
                                self.file_of[(rtype, name)] = f.name
            for block in d.get("variable", []):
                self.variables.update(block)
            for block in d.get("output", []):
                self.outputs.update(block)
            for block in d.get("locals", []):
                self.locals.update(block)

    def default(self, name):
        return self.variables[name].get("default")


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config()


def first(v):
    return v[0] if isinstance(v, list) else v


# --- terraform fmt ----------------------------------------------------------------------------------


def test_terraform_fmt_check():
    tf = terraform()
    r = subprocess.run([tf, "fmt", "-check", "-recursive", "-diff", str(TF)], capture_output=True, text=True, env=tf_env())
    assert r.returncode == 0, r.stdout + r.stderr


def test_terraform_fmt_check_catches_a_misformatted_file(tmp_path):
    tf = terraform()
    (tmp_path / "bad.tf").write_text('variable "x" {\ndefault="a"\n}\n')
    r = subprocess.run([tf, "fmt", "-check", str(tmp_path)], capture_output=True, text=True, env=tf_env())
    assert r.returncode != 0


# --- install.md's table -----------------------------------------------------------------------------


def test_every_resource_of_the_install_table_exists(cfg):
    r = cfg.resources
    # S3 bucket
    for t in [
        "aws_s3_bucket",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_policy",
    ]:
        assert (t, "data") in r, t
    # IAM roles + IRSA policies: gateway S3, dashboard cost read, operator/worker access
    for role in ["gateway", "operator", "dashboard"]:
        assert ("aws_iam_role", role) in r
    assert ("aws_iam_role_policy", "gateway_bucket") in r
    assert ("aws_iam_role_policy", "dashboard_cost_read") in r
    assert ("aws_iam_role_policy", "operator_bucket") in r
    # ECR repositories: gateway, operator, customer-built function images (and the dashboard)
    assert ("aws_ecr_repository", "this") in r
    assert set(cfg.default("ecr_repositories")) == {"gateway", "operator", "dashboard", "functions"}
    # EKS + VPC + node pools (+ Karpenter, the LB controller and EFS the cluster path names)
    for key in [
        ("aws_vpc", "this"),
        ("aws_subnet", "public"),
        ("aws_vpc_endpoint", "s3"),
        ("aws_eks_cluster", "this"),
        ("aws_iam_openid_connect_provider", "eks"),
        ("aws_eks_node_group", "system"),
        ("helm_release", "karpenter"),
        ("aws_iam_instance_profile", "karpenter_node"),
        ("aws_sqs_queue", "karpenter_interruption"),
        ("helm_release", "lb_controller"),
        ("aws_efs_file_system", "this"),
        ("aws_eks_addon", "efs_csi"),
    ]:
        assert key in r, key
    # Route53 + ACM
    for key in [("aws_route53_zone", "this"), ("aws_acm_certificate", "ingress"), ("aws_route53_record", "validation")]:
        assert key in r, key


def test_toggles_have_the_documented_defaults(cfg):
    # install.md: fresh cluster recommended; Route53/ACM opt-in with manage_public_dns=true; an
    # always-on i4i.large system node group; public worker subnets, no NAT Gateway; Karpenter,
    # the AWS Load Balancer Controller and EFS on the cluster path.
    assert cfg.default("create_cluster") is True
    assert cfg.default("manage_public_dns") is False
    assert cfg.default("system_node_instance_type") == "i4i.large"
    assert cfg.default("enable_nat_gateway") is False
    assert cfg.default("karpenter_enabled") is True
    assert cfg.default("lb_controller_enabled") is True
    assert cfg.default("efs_enabled") is True
    assert cfg.default("create_ecr_repositories") is True
    assert cfg.default("kubernetes_namespace") == "layer"  # install.md: helm ... --namespace layer


# Which toggle gates the resources of each optional file (count/for_each must mention one of them,
# or be driven by a resource/data block of the same file that does).
GATES = {
    "vpc.tf": ("var.create_cluster", "var.enable_nat_gateway", "local.azs"),
    "eks.tf": ("var.create_cluster",),
    "karpenter.tf": ("local.karpenter",),
    "addons.tf": ("local.lb_controller", "local.efs", "data.aws_iam_policy_document.addon_trust"),
    "dns.tf": ("local.dns", "var.ingress_alb_dns_name"),
    "ecr.tf": ("var.create_ecr_repositories", "aws_ecr_repository.this"),
}


def test_optional_parts_are_gated_by_their_toggles(cfg):
    locals_ = cfg.locals
    assert "var.create_cluster" in locals_["karpenter"] and "var.karpenter_enabled" in locals_["karpenter"]
    assert "var.create_cluster" in locals_["lb_controller"] and "var.lb_controller_enabled" in locals_["lb_controller"]
    assert "var.create_cluster" in locals_["efs"] and "var.efs_enabled" in locals_["efs"]
    assert "var.manage_public_dns" in locals_["dns"]
    assert "var.enable_nat_gateway" in str(locals_["node_subnet_ids"])
    assert "var.create_cluster" in str(locals_["azs"])
    checked = 0
    for key, body in cfg.resources.items():
        f = cfg.file_of[key]
        if f not in GATES:
            continue
        gate = str(body.get("count", "")) + str(body.get("for_each", ""))
        assert gate, f"{key} in {f} is not optional (no count/for_each)"
        own = [f"{t}.{n}" for (t, n) in cfg.resources if cfg.file_of[(t, n)] == f and (t, n) != key]
        assert any(g in gate for g in GATES[f]) or any(o in gate for o in own), (key, gate)
        checked += 1
    assert checked > 40
    # The always-on part of install.md's table is not gated.
    for key in [("aws_s3_bucket", "data"), ("aws_iam_role", "gateway"), ("aws_iam_role", "dashboard")]:
        assert "count" not in cfg.resources[key] and "for_each" not in cfg.resources[key]


def test_s3_bucket_is_private_encrypted_and_tls_only(cfg):
    r = cfg.resources
    pab = r[("aws_s3_bucket_public_access_block", "data")]
    for k in ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"]:
        assert pab[k] is True, k
    sse = first(first(r[("aws_s3_bucket_server_side_encryption_configuration", "data")]["rule"])["apply_server_side_encryption_by_default"])
    assert sse["sse_algorithm"] == "aws:kms" and "aws_kms_key.data" in sse["kms_master_key_id"]
    assert r[("aws_kms_key", "data")]["enable_key_rotation"] is True
    assert first(r[("aws_s3_bucket_versioning", "data")]["versioning_configuration"])["status"] == "Enabled"
    assert first(r[("aws_s3_bucket_ownership_controls", "data")]["rule"])["object_ownership"] == "BucketOwnerEnforced"
    deny = first(cfg.data[("aws_iam_policy_document", "bucket")]["statement"])
    cond = first(deny["condition"])
    assert deny["effect"] == "Deny" and cond["variable"] == "aws:SecureTransport" and cond["values"] == ["false"]
    assert cfg.default("bucket_force_destroy") is False


def test_irsa_trust_policies_name_the_service_accounts(cfg):
    trust = cfg.data[("aws_iam_policy_document", "irsa_trust")]
    assert trust["for_each"] == {
        "gateway": "${local.gateway_subjects}",
        "operator": "${local.operator_subjects}",
        "dashboard": "${local.dashboard_subjects}",
    }
    st = first(trust["statement"])
    assert st["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert first(st["principals"])["identifiers"] == ["${local.oidc_provider_arn}"]
    conds = {c["variable"]: c for c in st["condition"]}
    assert conds["${local.oidc_issuer_host}:sub"]["test"] == "StringEquals"
    assert conds["${local.oidc_issuer_host}:sub"]["values"] == "${each.value}"
    assert conds["${local.oidc_issuer_host}:aud"]["values"] == ["sts.amazonaws.com"]
    for role in ["gateway", "operator", "dashboard"]:
        assert cfg.resources[("aws_iam_role", role)]["assume_role_policy"] == (
            f'${{data.aws_iam_policy_document.irsa_trust["{role}"].json}}'
        )


def test_system_node_group_is_labelled_for_the_gateway(cfg):
    ng = cfg.resources[("aws_eks_node_group", "system")]
    assert ng["instance_types"] == ["${var.system_node_instance_type}"]
    assert ng["labels"] == {NODE_ROLE: "${var.system_node_role}"}
    taint = ng["dynamic"][0]["taint"] if isinstance(ng["dynamic"], list) else ng["dynamic"]["taint"]
    assert "var.system_node_taint" in taint["for_each"]
    content = first(taint["content"])
    assert content["key"] == NODE_ROLE and content["effect"] == "NO_SCHEDULE"
    # Its toleration in the helm values is the same key/value/effect.
    tol = cfg.locals["system_node_toleration"]
    assert tol == {"key": NODE_ROLE, "operator": "Equal", "value": "${var.system_node_role}", "effect": "NoSchedule"}


# --- outputs -> Helm values -------------------------------------------------------------------------


def snake(path: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", path.replace(".", "_")).lower()


def chart_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def has_path(values: dict, path: str) -> bool:
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_outputs_are_named_after_the_helm_values_they_feed(cfg):
    values = chart_values()
    fed = {}
    for name, out in cfg.outputs.items():
        m = re.match(r"Helm value ([A-Za-z0-9.]+)", out["description"])
        if not m:
            continue
        path = m.group(1).rstrip(".")
        assert snake(path) == name, (name, path)
        assert has_path(values, path), f"{path} is not a key of the chart's values.yaml"
        assert f"local.helm_values.{path}" in out["value"], (name, out["value"])
        fed[name] = path
    # install.md: "the S3 bucket name, gateway IRSA role ARN, dashboard cost-read role ARN, ECR
    # image URLs, and cluster metadata".
    for needed in [
        "s3.bucket",
        "serviceAccount.roleArn",
        "dashboard.serviceAccount.roleArn",
        "gateway.image",
        "operator.image",
        "dashboard.image",
        "workerKarpenter.clusterName",
        "workerKarpenter.instanceProfile",
        "gateway.nodeRole",
        "ingress.host",
    ]:
        assert needed in fed.values(), needed
    assert "helm_values_yaml" in cfg.outputs and "cluster_name" in cfg.outputs


def test_helm_values_file_reads_only_variables_and_helm_inputs():
    text = (TF / "helm_values.tf").read_text() + (TF / "service_accounts.tf").read_text()
    refs = set(re.findall(r"\b(?:local|data|aws_\w+|module)\.\w+", text))
    allowed = {
        "local.helm_inputs",
        "local.system_node_toleration",
        "local.chart_fullname",
        "local.metrics_service_account",
    }
    assert refs <= allowed, refs - allowed


# --- the Helm values, evaluated by terraform, rendered by the chart ---------------------------------

ARN = "arn:aws:iam::123456789012:role/"
STUB = """
locals {
  helm_inputs = {
    bucket                     = "layer-123456789012-us-east-1"
    gateway_role_arn           = "%(arn)slayer-gateway"
    operator_role_arn          = "%(arn)slayer-operator"
    dashboard_role_arn         = "%(arn)slayer-dashboard"
    images = {
      gateway   = "123456789012.dkr.ecr.us-east-1.amazonaws.com/layer/gateway:${var.image_tag}"
      operator  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/layer/operator:${var.image_tag}"
      dashboard = "123456789012.dkr.ecr.us-east-1.amazonaws.com/layer/dashboard:${var.image_tag}"
    }
    cluster_name               = var.create_cluster ? var.name : var.existing_cluster_name
    karpenter_instance_profile = var.create_cluster && var.karpenter_enabled ? "${var.name}-karpenter-node" : ""
    gateway_host               = var.gateway_host != "" ? var.gateway_host : "api.${var.dns_zone_name}"
    dashboard_host             = var.dashboard_host != "" ? var.dashboard_host : "dashboard.${var.dns_zone_name}"
  }
}
""" % {"arn": ARN}

SCENARIOS = {
    "defaults": {},
    "existing-cluster": {"create_cluster": "false", "existing_cluster_name": "prod"},
    "tainted-system-nodes": {"system_node_taint": "true", "system_node_instance_type": "i4i.xlarge"},
    "public-dns": {"manage_public_dns": "true", "dns_zone_name": "search.example.com"},
    "other-release": {"helm_release_name": "prod", "kubernetes_namespace": "search", "karpenter_enabled": "false"},
}


def evaluate(tmp_path: pathlib.Path, tf_vars: dict) -> dict:
    tf = terraform()
    for f in ["variables.tf", "helm_values.tf", "service_accounts.tf"]:
        shutil.copy(TF / f, tmp_path / f)
    (tmp_path / "stub.tf").write_text(STUB)
    args = [tf, "console"]
    for k, v in tf_vars.items():
        args += ["-var", f"{k}={v}"]
    expr = (
        "jsonencode({values = local.helm_values, gateway = local.gateway_subjects, "
        "operator = local.operator_subjects, dashboard = local.dashboard_subjects})"
    )
    r = subprocess.run(args, input=expr + "\n", capture_output=True, text=True, cwd=tmp_path, env=tf_env(), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(json.loads(r.stdout.strip()))


def scenario_var(name: str, tf_vars: dict, cfg: Config):
    v = tf_vars.get(name, cfg.default(name))
    return {"true": True, "false": False}.get(v, v) if isinstance(v, str) else v


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict:
    return {n: evaluate(tmp_path_factory.mktemp(n), v) for n, v in SCENARIOS.items()}


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def render_with(values: dict, release: str, namespace: str) -> list[dict]:
    import helm_python as helm

    # What the user adds to Terraform's values (install.md's required values Terraform cannot
    # know), and the operator turned on so its service account is rendered too.
    user = {
        "vectorStore": {"credential": {"apiKey": "tpuf_test"}},
        "dashboard": {"basicAuth": {"user": "ops", "password": "pw"}},
        "operator": {"enabled": True},
    }
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(deep_merge(values, user), name=release, namespace=namespace, is_install=True)
    docs = []
    for path, text in manifests.items():
        if not path.endswith("NOTES.txt"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def leaf_paths(d: dict, prefix=""):
    for k, v in d.items():
        p = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from leaf_paths(v, p + ".")
        else:
            yield p


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_values_are_chart_keys(evaluated, scenario):
    values = chart_values()
    for path in leaf_paths(evaluated[scenario]["values"]):
        assert has_path(values, path), f"{scenario}: {path} is not a key of values.yaml"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_irsa_subjects_are_the_service_accounts_the_chart_renders(evaluated, scenario, cfg):
    tf_vars = SCENARIOS[scenario]
    release = scenario_var("helm_release_name", tf_vars, cfg)
    namespace = scenario_var("kubernetes_namespace", tf_vars, cfg)
    ev = evaluated[scenario]
    docs = render_with(ev["values"], release, namespace)
    bound: dict[str, set] = {}
    for d in docs:
        if d["kind"] != "ServiceAccount":
            continue
        arn = (d["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")
        if arn:
            bound.setdefault(arn, set()).add(f"system:serviceaccount:{d['metadata']['namespace']}:{d['metadata']['name']}")
    assert set(bound) == {ARN + "layer-gateway", ARN + "layer-operator", ARN + "layer-dashboard"}, bound
    for role in ["gateway", "operator", "dashboard"]:
        assert bound[ARN + f"layer-{role}"] == set(ev[role]), (scenario, role)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_gateway_and_document_cache_land_on_the_system_node_group(evaluated, scenario, cfg):
    tf_vars = SCENARIOS[scenario]
    create_cluster = scenario_var("create_cluster", tf_vars, cfg)
    ev = evaluated[scenario]
    docs = render_with(ev["values"], scenario_var("helm_release_name", tf_vars, cfg), scenario_var("kubernetes_namespace", tf_vars, cfg))
    if not create_cluster:
        # An existing cluster keeps the chart's own scheduling defaults.
        assert "nodeRole" not in ev["values"]["gateway"] and not ev["values"]["workerKarpenter"]
        return
    # The node group as this scenario's variables make it (eks.tf: labels, dynamic taint).
    labels = {NODE_ROLE: scenario_var("system_node_role", tf_vars, cfg)}
    taints = (
        [{"key": NODE_ROLE, "value": labels[NODE_ROLE], "effect": "NoSchedule"}]
        if scenario_var("system_node_taint", tf_vars, cfg)
        else []
    )
    instance_type = scenario_var("system_node_instance_type", tf_vars, cfg)
    for kind, suffix in [("Deployment", "gateway"), ("StatefulSet", "document-cache")]:
        (w,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
        spec = w["spec"]["template"]["spec"]
        assert spec["nodeSelector"].items() <= labels.items(), (scenario, suffix, spec["nodeSelector"])
        # The chart has a tolerations value for the gateway only (not for the document cache, the
        # bundled PostgreSQL or VictoriaMetrics): that is why system_node_taint defaults to false.
        for taint in taints if suffix == "gateway" else []:
            assert any(
                t.get("key") == taint["key"] and t.get("value") == taint["value"] and t.get("effect") == taint["effect"]
                for t in spec.get("tolerations", [])
            ), (scenario, suffix, "does not tolerate", taint)
        if suffix == "gateway":
            terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            types = [e["values"] for t in terms for e in t["matchExpressions"] if e["key"] == "node.kubernetes.io/instance-type"]
            assert types and all(instance_type in v for v in types), (scenario, types)
    # Karpenter: the chart's worker pools point at this cluster and its node instance profile.
    if scenario_var("karpenter_enabled", tf_vars, cfg):
        classes = [d for d in docs if d["kind"] == "EC2NodeClass"]
        assert {c["metadata"]["name"] for c in classes} == {"worker-cpu", "worker-gpu"}
        for c in classes:
            assert c["spec"]["instanceProfile"] == f"{scenario_var('name', tf_vars, cfg)}-karpenter-node"
            assert c["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": scenario_var("name", tf_vars, cfg)}}]
    else:
        assert not [d for d in docs if d["kind"] in ("NodePool", "EC2NodeClass")]


def test_public_dns_sets_the_ingress_hosts(evaluated):
    v = evaluated["public-dns"]["values"]
    assert v["ingress"] == {"enabled": True, "host": "api.search.example.com"}
    assert v["dashboard"]["ingress"] == {"enabled": True, "host": "dashboard.search.example.com"}
    assert evaluated["defaults"]["values"]["ingress"] == {}


def test_discovery_tags_match_the_chart_selectors(cfg):
    # Karpenter's EC2NodeClasses (chart) select subnets and security groups by
    # karpenter.sh/discovery=<clusterName>; Terraform tags the node subnets and the cluster SG so.
    assert cfg.locals["discovery_tags"] == {"karpenter.sh/discovery": "${local.cluster_name}"}
    tag = cfg.resources[("aws_ec2_tag", "cluster_sg_discovery")]
    assert tag["key"] == "karpenter.sh/discovery" and tag["value"] == "${local.cluster_name}"
    assert "local.discovery_tags" in str(cfg.resources[("aws_subnet", "public")]["tags"])
    assert "local.discovery_tags" in str(cfg.resources[("aws_subnet", "private")]["tags"])


def test_cluster_version_matches_the_charts_node_images(cfg):
    """The chart's Karpenter pools boot the EKS-optimized AMI named by amiSsmParameter; its
    Kubernetes version must be the control plane's (a kubelet newer than its API server is not
    supported)."""
    version = cfg.default("kubernetes_version")
    v = chart_values()
    params = [
        v["workerKarpenter"]["amiSsmParameter"],
        v["workerKarpenter"]["gpu"]["amiSsmParameter"],
        v["documentCache"]["karpenter"]["amiSsmParameter"],
    ]
    for p in params:
        assert f"/optimized-ami/{version}/" in p, (version, p)


def test_karpenter_release_is_the_one_whose_crds_the_chart_is_tested_against(cfg):
    version = cfg.default("karpenter_version")
    crds = sorted((TF.parent / "helm" / "tests" / "karpenter-crds").glob("*.yaml"))
    assert crds
    for f in crds:
        assert f"aws/karpenter-provider-aws v{version} " in f.read_text().splitlines()[0], f.name


def test_karpenter_nodes_have_their_own_role_and_access_entry(cfg):
    r = cfg.resources
    # EKS keeps an access entry for the managed node group's role; Karpenter's nodes need another.
    assert r[("aws_eks_node_group", "system")]["node_role_arn"] == "${aws_iam_role.node[0].arn}"
    assert r[("aws_eks_access_entry", "karpenter_node")]["principal_arn"] == "${aws_iam_role.karpenter_node[0].arn}"
    assert r[("aws_eks_access_entry", "karpenter_node")]["type"] == "EC2_LINUX"
    assert r[("aws_iam_instance_profile", "karpenter_node")]["role"] == "${aws_iam_role.karpenter_node[0].name}"
    pass_role = [
        st
        for st in cfg.data[("aws_iam_policy_document", "karpenter_controller")]["statement"]
        if st.get("sid") == "PassNodeRole"
    ]
    assert pass_role and pass_role[0]["resources"] == ["${aws_iam_role.karpenter_node[0].arn}"]
    # The controller's IRSA subject is the service account its Helm release runs as.
    trust = first(cfg.data[("aws_iam_policy_document", "karpenter_trust")]["statement"])
    sub = [c for c in trust["condition"] if c["variable"].endswith(":sub")][0]
    assert sub["values"] == ["system:serviceaccount:${local.karpenter_namespace}:${local.karpenter_service_account}"]
    release = r[("helm_release", "karpenter")]
    assert release["namespace"] == "${local.karpenter_namespace}"
    assert "name = local.karpenter_service_account" in re.sub(r"\s+", " ", str(release["values"]))


# --- checkov ----------------------------------------------------------------------------------------


def test_checkov_passes_with_every_skip_justified():
    checkov = need("checkov", os.environ.get("LAYER_CHECKOV") or shutil.which("checkov"))
    for f in TF.glob("*.tf"):
        for line in f.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#checkov:skip=CKV2?_AWS_\d+:\S.{10,}", line), f"{f.name}: a skip without a reason: {line.strip()}"
    r = subprocess.run(
        [checkov, "-d", str(TF), "--framework", "terraform", "--output", "json", "--quiet", "--skip-download", "--compact"],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        timeout=600,
    )
    out = r.stdout.strip()
    report = json.loads(out) if out.startswith(("{", "[")) else {}
    reports = report if isinstance(report, list) else [report]
    failed = [
        (c["check_id"], c["resource"], c["file_path"])
        for rep in reports
        for c in rep.get("results", {}).get("failed_checks", [])
    ]
    passed = sum(rep.get("summary", {}).get("passed", 0) for rep in reports)
    assert not failed, failed
    assert r.returncode == 0, r.stderr[-2000:]
    assert passed > 50, (passed, r.stderr[-2000:])
