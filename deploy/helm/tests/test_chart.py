"""The Helm chart under deploy/helm/layer, rendered by real Helm (v4, through helm-python-sdk's
libhelm_c) and every rendered object validated with kubernetes-validate --strict.

Value sets: the defaults (plus the values the chart requires), keys mode, dashboard off,
external PostgreSQL, Aerospike on, multi-store, operator on (cluster-wide and namespaced), and
every optional object on. The gateway's layer.yaml of each set is also loaded by the real
gateway binary when LAYER_GATEWAY_BIN is set (scripts/test sets it).
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import signal
import subprocess
import tempfile
import time

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

import conftest

HERE = pathlib.Path(__file__).resolve().parent
# LAYER_HELM_CHART: test a copy of the chart (e.g. with another branch's crds/ beside it).
CHART = pathlib.Path(os.environ.get("LAYER_HELM_CHART") or HERE.parent / "layer")
RELEASE, NAMESPACE = "layer", "layer"

# A current Kubernetes (the EKS AMI line the documented chart targets) and the newest schema
# set kubernetes-validate bundles.
K8S_VERSIONS = ["1.35.0", f"{kubernetes_validate.latest_version()}.0"]

# Kinds whose schema Kubernetes does not ship: the chart's own CRDs (checked against the chart's
# crds/ when present) and the add-ons it targets (KEDA, Prometheus Operator).
CUSTOM_KINDS = {
    ("hevlayer.com/v1alpha1", "VectorStore"),
    ("hevlayer.com/v1alpha1", "InfraRules"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("karpenter.sh/v1", "NodePool"),
    ("karpenter.k8s.aws/v1", "EC2NodeClass"),
}

# The values the chart requires (install.md's "required" column); everything else is default.
REQUIRED = {
    "gateway": {"image": "123.dkr.ecr.us-east-1.amazonaws.com/layer-gateway:0.1.0"},
    "vectorStore": {"credential": {"apiKey": "tpuf_test_upstream"}},
    "s3": {"bucket": "layer-test-bucket"},
    "serviceAccount": {"roleArn": "arn:aws:iam::123:role/layer-gateway"},
    "dashboard": {
        "image": "123.dkr.ecr.us-east-1.amazonaws.com/layer-dashboard:0.1.0",
        "basicAuth": {"user": "ops", "password": "s3cret"},
    },
}


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


KEYS_MODE = {
    "vectorStore": {
        "inboundAuth": {
            "mode": "keys",
            "keys": [
                {
                    "name": "worker",
                    "scopes": ["read", "write", "admin"],
                    "apiKey": "layer_worker_key",
                    "secretRef": {"key": "layer-inbound-worker-api-key"},
                },
                {
                    "name": "shop-ro",
                    "scopes": ["read"],
                    "namespaces": ["shop-*"],
                    "secretRef": {"name": "precreated", "key": "shop"},
                },
            ],
        }
    }
}

VALUE_SETS = {
    "default": REQUIRED,
    "keys-mode": merge(REQUIRED, KEYS_MODE),
    "dashboard-off": merge(REQUIRED, {"dashboard": {"enabled": False}}),
    "external-postgres": merge(
        REQUIRED,
        {"gateway": {"queue": {"embedded": False, "url": "postgresql://layer:pw@db.example:5432/layer"}}},
    ),
    "aerospike-on": merge(
        REQUIRED,
        {
            "gateway": {"cache": {"tier": "aerospike"}},
            "documentCache": {"replicas": 1, "storage": {"pvc": {"enabled": True}}},
        },
    ),
    "multi-store": merge(
        REQUIRED,
        {
            "vectorStores": [
                {
                    "name": "eu",
                    "endpoint": {"url": "https://aws-eu-central-1.turbopuffer.com", "region": "aws-eu-central-1"},
                    "credential": {"apiKey": "tpuf_eu"},
                },
                {
                    "name": "us-west",
                    "endpoint": {"url": "https://gcp-us-west1.turbopuffer.com"},
                    "credential": {"existingSecret": "tpuf-west", "secretKey": "api-key"},
                },
            ]
        },
    ),
    "operator-cluster": merge(REQUIRED, {"operator": {"enabled": True, "image": "ecr/layer-operator:0.1.0"}}),
    "operator-namespaced": merge(
        REQUIRED,
        {"operator": {"enabled": True, "image": "ecr/layer-operator:0.1.0", "watchNamespace": "team-a"}},
    ),
    # Karpenter capacity as Terraform's helm values turn it on, plus the dedicated NVMe pool.
    "karpenter-on": merge(
        REQUIRED,
        {
            "workerKarpenter": {"enabled": True, "clusterName": "layer", "instanceProfile": "layer-karpenter-node"},
            "documentCache": {"nodeRole": "document-cache", "karpenter": {"enabled": True}},
        },
    ),
    "everything-on": merge(
        merge(REQUIRED, KEYS_MODE),
        {
            "ingress": {"enabled": True},
            "dashboard": {"ingress": {"enabled": True}},
            "gateway": {"serviceMonitor": {"enabled": True}, "replicas": 3},
            "license": {"token": "claims.sig"},
            "operator": {"enabled": True, "image": "ecr/layer-operator:0.1.0"},
            "rbac": {
                "keyRoleBindings": {
                    "admin": [{"kind": "Group", "name": "platform-admins"}],
                    "viewer": [
                        {"kind": "User", "name": "alice@example.com"},
                        {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"},
                    ],
                }
            },
            "metrics": {"storage": {"storageClassName": ""}},
        },
    ),
}


def render_raw(values: dict) -> dict[str, str]:
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values: dict, label: str | None = None) -> list[dict]:
    start = time.perf_counter()
    manifests = render_raw(values)
    if label:
        conftest.RENDER_SECONDS[label] = time.perf_counter() - start
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["_template"] = path
                docs.append(doc)
    return docs


def notes(values: dict) -> str:
    return render_raw(values)[f"{CHART.name}/templates/NOTES.txt"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(values, name) for name, values in VALUE_SETS.items()}


def find(docs, kind, name=None):
    got = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return got


def one(docs, kind, name):
    got = find(docs, kind, name)
    assert len(got) == 1, f"{kind}/{name}: {len(got)} objects"
    return got[0]


def container(workload, name):
    for c in workload["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name}")


def env_of(c) -> dict:
    return {e["name"]: e for e in c.get("env", [])}


def layer_yaml(docs) -> dict:
    return yaml.safe_load(one(docs, "ConfigMap", "layer-gateway")["data"]["layer.yaml"])


def strip(doc):
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def crd_schemas() -> dict:
    """openAPIV3Schema per (apiVersion, kind) from the chart's crds/ (generated elsewhere)."""
    out = {}
    crds = CHART / "crds"
    for f in sorted(crds.glob("*.yaml")) if crds.is_dir() else []:
        for crd in yaml.safe_load_all(f.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for v in crd["spec"]["versions"]:
                key = (f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])
                out[key] = v["schema"]["openAPIV3Schema"]
    return out


# ---------------------------------------------------------------------------------------------


def test_helm_lint_passes_strict():
    for name, values in VALUE_SETS.items():
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        assert report["errors"] == [], (name, report)
        assert all(m["severity"] < 2 for m in report["messages"]), (name, report["messages"])


def test_lint_reports_a_broken_template(tmp_path):
    """The lint step can fail: a copy of the chart with one template broken is reported. (Helm's
    lint mode logs `fail` calls instead of failing, so the value checks are tested by rendering.)"""
    import shutil

    broken = tmp_path / "layer"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("{{ if .Values.gateway.image }}\nkind: x\n")
    report = helm.lint(str(broken), REQUIRED)
    assert report["errors"] or any(m["severity"] >= 3 for m in report["messages"]), report
    assert "broken.yaml" in json.dumps(report)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
@pytest.mark.parametrize("k8s", K8S_VERSIONS)
def test_every_object_validates_strict(rendered, value_set, k8s):
    docs = rendered[value_set]
    schemas = crd_schemas()
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        body = strip(doc)
        if key in CUSTOM_KINDS:
            if key in schemas:
                jsonschema.validate(body.get("spec", {}), schemas[key]["properties"]["spec"])
            continue
        try:
            kubernetes_validate.validate(body, k8s, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{value_set}: {doc['kind']}/{doc['metadata']['name']} ({doc['_template']}): {e}")
        assert doc["metadata"].get("namespace") in (None, NAMESPACE, "team-a"), doc["metadata"]


def test_custom_kinds_check_is_not_a_blanket_pass():
    """A kind outside CUSTOM_KINDS has no bundled schema: the validator raises, it does not pass."""
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}, K8S_VERSIONS[0], strict=True
        )
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize(
    "auth",
    [{"user": "", "password": "pw"}, {"user": "ops", "password": ""}, {"user": "", "password": ""}],
)
def test_blank_basic_auth_fails_to_render(auth):
    values = merge(REQUIRED, {"dashboard": {"basicAuth": auth}})
    with pytest.raises(helm.HelmRenderError, match="dashboard.basicAuth.user and dashboard.basicAuth.password are required"):
        render_raw(values)
    # Blank basic auth is fine once the dashboard is off.
    render_raw(merge(values, {"dashboard": {"enabled": False}}))


@pytest.mark.parametrize(
    "values,message",
    [
        ({"gateway": {"image": ""}}, "gateway.image is required"),
        ({"vectorStore": {"credential": {"apiKey": ""}}}, "vectorStore.credential.apiKey is required"),
        ({"s3": {"bucket": ""}}, "s3.bucket is required"),
        ({"vectorStore": {"inboundAuth": {"mode": "keys"}}}, "needs at least one entry"),
        # Caught by values.schema.json before any template runs.
        ({"vectorStore": {"inboundAuth": {"mode": "bearer"}}}, "value must be one of 'deriveFromStore', 'keys', 'open'"),
        ({"gateway": {"replicas": "three"}}, "/gateway/replicas"),
        ({"gateway": {"cache": {"tier": "ram"}}}, "/gateway/cache/tier"),
        ({"vectorStore": {"inboundAuth": {"mode": "keys", "keys": [{"name": "w", "scopes": ["root"], "apiKey": "k"}]}}},
         "/vectorStore/inboundAuth/keys/0/scopes/0"),
        ({"rbac": {"keyRoleBindings": {"admin": [{"kind": "Grup", "name": "x"}]}}}, "/rbac/keyRoleBindings/admin/0/kind"),
        ({"gateway": {"queue": {"embedded": False}}}, "gateway.queue.url or gateway.queue.existingSecret"),
        ({"gateway": {"cache": {"tier": "aerospike"}}, "documentCache": {"enabled": False}}, "needs documentCache.enabled"),
        ({"operator": {"enabled": True}}, "operator.image is required"),
        ({"search": {"enabled": True}}, "search.enabled: this chart does not render it"),
        ({"workerKarpenter": {"enabled": True}}, "workerKarpenter.clusterName is required"),
        (
            {"vectorStore": {"inboundAuth": {"mode": "keys", "keys": [{"name": "w", "scopes": ["read"]}]}}},
            "needs apiKey, or secretRef.name",
        ),
        ({"vectorStores": [{"name": "eu", "endpoint": {"url": "https://x"}, "credential": {}}]}, "credential.apiKey"),
        ({"vectorStores": [{"name": "eu", "endpoint": {"url": "https://x"}}]}, "missing property 'credential'"),
    ],
)
def test_values_that_cannot_work_fail_to_render(values, message):
    with pytest.raises((helm.HelmRenderError, helm.HelmValuesError), match=re.escape(message)):
        render_raw(merge(REQUIRED, values))


def test_dashboard_off_renders_none_of_its_objects(rendered):
    on, off = rendered["default"], rendered["dashboard-off"]
    dash = [d for d in on if "dashboard" in d["metadata"]["name"]]
    kinds = {d["kind"] for d in dash}
    assert {"Deployment", "Service", "Secret", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert not [d for d in off if "dashboard" in json.dumps(strip(d)).lower()]
    everything_off = render(merge(VALUE_SETS["everything-on"], {"dashboard": {"enabled": False}}))
    assert not [d for d in everything_off if "dashboard" in d["metadata"]["name"]]
    assert not find(everything_off, "Ingress", "layer-dashboard")
    assert find(everything_off, "Ingress", "layer-gateway")
    # The gateway is unchanged without it.
    assert one(off, "Deployment", "layer-gateway") == one(on, "Deployment", "layer-gateway")
    assert "dashboard is disabled" in notes(VALUE_SETS["dashboard-off"])


def test_dashboard_wiring(rendered):
    docs = rendered["default"]
    dep = one(docs, "Deployment", "layer-dashboard")
    c = container(dep, "dashboard")
    env = env_of(c)
    assert env["LAYER_GATEWAY_URL"]["value"] == "http://layer-gateway.layer.svc:8080"
    assert env["LAYER_DASHBOARD_LISTEN"]["value"] == "0.0.0.0:8081"
    # deriveFromStore: the dashboard's bearer is the store credential.
    assert env["LAYER_GATEWAY_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "turbopuffer-api-key"}
    assert env["LAYER_DASHBOARD_USER"]["valueFrom"]["secretKeyRef"] == {"name": "layer-dashboard", "key": "user"}
    assert env["LAYER_DASHBOARD_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "layer-dashboard", "key": "password"}
    assert c["args"] == ["--write-access"]
    assert one(docs, "Secret", "layer-dashboard")["stringData"] == {"user": "ops", "password": "s3cret"}
    sa = one(docs, "ServiceAccount", "layer-dashboard")
    assert "eks.amazonaws.com/role-arn" not in sa["metadata"].get("annotations", {})
    ro = render(merge(REQUIRED, {"dashboard": {"writeAccess": {"enabled": False}, "kubeAccess": {"enabled": False}}}))
    assert "args" not in container(one(ro, "Deployment", "layer-dashboard"), "dashboard")
    assert not find(ro, "ClusterRole", "layer-dashboard-write")
    assert not find(ro, "ClusterRole", "layer-dashboard-read")
    n = notes(REQUIRED)
    assert "kubectl port-forward -n layer svc/layer-dashboard 8081:8081" in n
    assert "kubectl port-forward -n layer svc/layer-gateway 8080:8080" in n


def test_gateway_runs_on_nvme_nodes_and_drains(rendered):
    docs = rendered["default"]
    dep = one(docs, "Deployment", "layer-gateway")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"layer.hev.dev/node-role": "infra"}
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    expr = term["matchExpressions"][0]
    assert expr["key"] == "node.kubernetes.io/instance-type" and "i4i.large" in expr["values"]
    assert all(t.startswith("i4i.") for t in expr["values"])
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert spec["terminationGracePeriodSeconds"] == 75
    assert spec["priorityClassName"] == "layer-gateway-critical"
    c = container(dep, "gateway")
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 20}}
    assert c["args"] == ["--config", "/etc/layer/layer.yaml"]
    env = env_of(c)
    # One shard per core: the CPU limit (rounded up), or the node's cores without one.
    assert env["LAYER_SHARDS"]["valueFrom"]["resourceFieldRef"] == {
        "containerName": "gateway", "resource": "limits.cpu", "divisor": "1"}
    assert "cpu" not in c["resources"].get("limits", {})
    assert env["LAYER_STORE_0_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "turbopuffer-api-key"}
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["data"]["hostPath"] == {"path": "/mnt/nvme/layer-gateway", "type": "DirectoryOrCreate"}
    cfg = layer_yaml(docs)
    assert cfg["gateway"]["cache"]["tier"] == "nvme"
    assert cfg["gateway"]["dataDir"] == "/var/lib/layer"
    # The drain deadline is the grace period less the preStop sleep and 5 s of slack.
    assert cfg["gateway"]["drainTimeoutMs"] == 50_000
    assert cfg["gateway"]["consistency"]["stablePollIntervalMs"] == 60000
    assert cfg["gateway"]["objectStore"] == {"backend": "s3", "bucket": "layer-test-bucket", "region": "us-east-1"}
    assert cfg["vectorStore"]["credential"] == {"env": "LAYER_STORE_0_API_KEY"}
    assert "tpuf_test_upstream" not in json.dumps(cfg)
    pdb = one(docs, "PodDisruptionBudget", "layer-gateway")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert not find(docs, "ServiceMonitor")
    sm = one(rendered["everything-on"], "ServiceMonitor", "layer-gateway")
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    fixed = render(merge(REQUIRED, {"gateway": {"shardCount": 8}}))
    assert env_of(container(one(fixed, "Deployment", "layer-gateway"), "gateway"))["LAYER_SHARDS"] == {
        "name": "LAYER_SHARDS", "value": "8"}
    sa = one(docs, "ServiceAccount", "layer")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123:role/layer-gateway"


def test_victoria_metrics_scrapes_the_gateway(rendered):
    docs = rendered["default"]
    sts = one(docs, "StatefulSet", "layer-metrics")
    vm = container(sts, "victoria-metrics")
    assert "-retentionPeriod=7d" in vm["args"]
    scrape = yaml.safe_load(one(docs, "ConfigMap", "layer-metrics")["data"]["scrape.yaml"])
    assert scrape["global"]["scrape_interval"] == "30s"
    job = scrape["scrape_configs"][0]
    assert job["job_name"] == "layer-gateway" and job["metrics_path"] == "/metrics"
    assert "app.kubernetes.io/name=layer-gateway" in job["kubernetes_sd_configs"][0]["selectors"][0]["label"]
    gw = one(docs, "Deployment", "layer-gateway")
    assert gw["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "layer-gateway"
    assert container(gw, "gateway")["ports"][0]["name"] == "http"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "local-path"
    backup = container(sts, "backup")
    assert "s3://layer-test-bucket/vm-backups/latest" in backup["command"][2]
    assert "sleep 3600" in backup["command"][2]
    role = one(docs, "Role", "layer-metrics")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    assert "initContainers" not in sts["spec"]["template"]["spec"]
    hostpath = one(rendered["everything-on"], "StatefulSet", "layer-metrics")
    assert "volumeClaimTemplates" not in hostpath["spec"]
    vols = {v["name"]: v for v in hostpath["spec"]["template"]["spec"]["volumes"]}
    assert vols["storage"]["hostPath"]["path"] == "/mnt/nvme/layer-gateway-vm"
    assert hostpath["spec"]["template"]["spec"]["initContainers"][0]["command"][-1] == "chown 65534:65534 /storage"
    off = render(merge(REQUIRED, {"metrics": {"enabled": False}}))
    assert not find(off, "StatefulSet", "layer-metrics")


def test_bundled_postgres_and_external_url(rendered):
    docs = rendered["default"]
    sts = one(docs, "StatefulSet", "layer-postgres")
    assert container(sts, "postgres")["image"] == "postgres:16"
    secret = one(docs, "Secret", "layer-postgres")["stringData"]
    assert secret["database-url"] == f"postgresql://gateway:{secret['password']}@layer-postgres.layer.svc:5432/gateway"
    assert len(secret["password"]) == 32
    env = env_of(container(one(docs, "Deployment", "layer-gateway"), "gateway"))
    assert env["LAYER_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "layer-postgres", "key": "database-url"}

    ext = rendered["external-postgres"]
    assert not find(ext, "StatefulSet", "layer-postgres") and not find(ext, "Secret", "layer-postgres")
    assert one(ext, "Secret", "layer")["stringData"]["database-url"] == "postgresql://layer:pw@db.example:5432/layer"
    env = env_of(container(one(ext, "Deployment", "layer-gateway"), "gateway"))
    assert env["LAYER_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "database-url"}

    pre = render(merge(REQUIRED, {"gateway": {"queue": {"embedded": False, "existingSecret": "pg"}}}))
    env = env_of(container(one(pre, "Deployment", "layer-gateway"), "gateway"))
    assert env["LAYER_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "pg", "key": "database-url"}
    assert "database-url" not in one(pre, "Secret", "layer")["stringData"]


def test_keys_mode(rendered):
    docs = rendered["keys-mode"]
    data = one(docs, "Secret", "layer")["stringData"]
    assert data["layer-inbound-worker-api-key"] == "layer_worker_key"
    assert data["turbopuffer-api-key"] == "tpuf_test_upstream"
    assert "shop" not in data  # secretRef.name: a pre-created Secret
    cfg = layer_yaml(docs)
    auth = cfg["vectorStore"]["inboundAuth"]
    assert auth["mode"] == "keys"
    assert auth["keys"] == [
        {"name": "worker", "scopes": ["read", "write", "admin"], "tokenEnv": "LAYER_STORE_0_KEY_0"},
        {"name": "shop-ro", "scopes": ["read"], "namespaces": ["shop-*"], "tokenEnv": "LAYER_STORE_0_KEY_1"},
    ]
    env = env_of(container(one(docs, "Deployment", "layer-gateway"), "gateway"))
    assert env["LAYER_STORE_0_KEY_0"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "layer-inbound-worker-api-key"}
    assert env["LAYER_STORE_0_KEY_1"]["valueFrom"]["secretKeyRef"] == {"name": "precreated", "key": "shop"}
    dash = env_of(container(one(docs, "Deployment", "layer-dashboard"), "dashboard"))
    assert dash["LAYER_GATEWAY_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "layer-inbound-worker-api-key"}
    vs = one(docs, "VectorStore", "turbopuffer-default")["spec"]["inboundAuth"]
    assert vs["workerSecretName"] == "layer" and vs["workerSecretKey"] == "layer-inbound-worker-api-key"
    assert vs["keys"][1]["secretRef"] == {"name": "precreated", "key": "shop"}
    custom = render(merge(VALUE_SETS["keys-mode"], {"vectorStore": {"inboundAuth": {
        "workerSecretName": "workers", "workerSecretKey": "bearer"}}}))
    dash = env_of(container(one(custom, "Deployment", "layer-dashboard"), "dashboard"))
    assert dash["LAYER_GATEWAY_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "workers", "key": "bearer"}
    opened = render(merge(REQUIRED, {"vectorStore": {"inboundAuth": {"mode": "open"}}}))
    assert "LAYER_GATEWAY_API_KEY" not in env_of(container(one(opened, "Deployment", "layer-dashboard"), "dashboard"))
    assert "Inbound auth is OFF" in notes(merge(REQUIRED, {"vectorStore": {"inboundAuth": {"mode": "open"}}}))


def test_multi_store(rendered):
    docs = rendered["multi-store"]
    stores = {d["metadata"]["name"]: d["spec"] for d in find(docs, "VectorStore")}
    assert set(stores) == {"turbopuffer-default", "eu", "us-west"}
    assert stores["turbopuffer-default"]["default"] is True and stores["eu"]["default"] is False
    assert stores["eu"]["credential"]["secretRef"] == {"name": "layer", "key": "turbopuffer-eu-api-key"}
    assert stores["us-west"]["credential"]["secretRef"] == {"name": "tpuf-west", "key": "api-key"}
    cfg = layer_yaml(docs)
    assert [s["name"] for s in cfg["vectorStores"]] == ["eu", "us-west"]
    assert cfg["vectorStores"][0]["credential"] == {"env": "LAYER_STORE_1_API_KEY"}
    assert cfg["vectorStores"][0]["inboundAuth"] == {"mode": "deriveFromStore"}
    env = env_of(container(one(docs, "Deployment", "layer-gateway"), "gateway"))
    assert env["LAYER_STORE_1_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "turbopuffer-eu-api-key"}
    assert env["LAYER_STORE_2_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "tpuf-west", "key": "api-key"}
    assert one(docs, "Secret", "layer")["stringData"]["turbopuffer-eu-api-key"] == "tpuf_eu"


def test_aerospike_on_and_off(rendered):
    docs = rendered["aerospike-on"]
    cfg = layer_yaml(docs)
    assert cfg["gateway"]["cache"]["tier"] == "aerospike"
    assert cfg["gateway"]["cache"]["aerospike"] == {
        "hosts": "layer-document-cache.layer.svc:3000", "namespace": "hevlayer"}
    sts = one(docs, "StatefulSet", "layer-document-cache")
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["template"]["spec"]["nodeSelector"] == {"layer.hev.dev/node-role": "system"}
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "gp3"
    # storage.resetOnStart: in the container's own start, so a liveness restart (stop-writes),
    # which does not rerun init containers, also starts from an empty file.
    assert "initContainers" not in sts["spec"]["template"]["spec"]
    assert container(sts, "aerospike")["args"] == [
        "sh", "-c", "rm -f /opt/aerospike/data/hevlayer.dat && exec asd --foreground "
        "--config-file /etc/aerospike/aerospike.conf"]
    probe = container(sts, "aerospike")["livenessProbe"]["exec"]["command"][-1]
    assert "stop_writes=true" in probe  # autoRestartOnStopWrites
    conf = one(docs, "ConfigMap", "layer-document-cache")["data"]["aerospike.conf"]
    assert "filesize 64G" in conf and "cluster-name layer-document-cache" in conf
    so = one(docs, "ScaledObject", "layer-document-cache")["spec"]
    assert so["minReplicaCount"] == 1 and so["idleReplicaCount"] == 0 and so["maxReplicaCount"] == 1
    assert so["triggers"][0]["metadata"]["serverAddress"] == "http://layer-metrics.layer.svc:8428"
    # Default: the document cache exists scaled to zero, the gateway keeps its NVMe tier.
    default = rendered["default"]
    assert one(default, "StatefulSet", "layer-document-cache")["spec"]["replicas"] == 0
    assert "aerospike" not in layer_yaml(default)["gateway"]["cache"]
    off = render(merge(REQUIRED, {"documentCache": {"enabled": False}}))
    assert not [d for d in off if "document-cache" in d["metadata"]["name"]]
    plain = render(merge(REQUIRED, {"documentCache": {"autoRestartOnStopWrites": False,
                                                      "storage": {"resetOnStart": False}}}))
    sts = one(plain, "StatefulSet", "layer-document-cache")
    assert container(sts, "aerospike")["args"] == [
        "asd", "--foreground", "--config-file", "/etc/aerospike/aerospike.conf"]
    assert "tcpSocket" in container(sts, "aerospike")["livenessProbe"]


def rules_of(doc):
    return doc.get("rules", [])


def test_rbac_least_privilege(rendered):
    for name, docs in rendered.items():
        for d in docs:
            if d["kind"] in ("Role", "ClusterRole"):
                for r in rules_of(d):
                    assert "*" not in r["verbs"] and "*" not in r["resources"], (name, d["metadata"]["name"])
                    assert "*" not in r.get("apiGroups", []), (name, d["metadata"]["name"])
                    if "secrets" in r["resources"]:
                        # The operator manages Secrets; the gateway only GETs a store's
                        # credential Secret by name (no list, no watch: it cannot enumerate them).
                        if d["metadata"]["name"] == "layer-gateway-reader":
                            assert r == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
                        else:
                            assert d["metadata"]["name"] == "layer-operator", (name, d["metadata"]["name"])
                assert "aggregationRule" not in d
    docs = rendered["default"]
    gw = one(docs, "Role", "layer-gateway-reader")
    assert gw["rules"] == [{"apiGroups": ["hevlayer.com"], "resources": ["vectorstores", "apikeys", "indexes"],
                            "verbs": ["get", "list", "watch"]},
                           {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    cm = layer_yaml(docs)["gateway"]["kubernetes"]
    assert cm == {"enabled": True, "namespace": gw["metadata"]["namespace"],
                  "indexNamespace": gw["metadata"]["namespace"], "indexes": True}
    assert not find(docs, "Role", "layer-gateway-index-reader")
    # Stores and keys are read in the release namespace; Index resources where they live.
    no_index = render(merge(REQUIRED, {"gateway": {"indexConfig": {"enabled": False}, "indexNamespace": "idx"}}))
    role = one(no_index, "Role", "layer-gateway-reader")
    assert role["metadata"]["namespace"] == gw["metadata"]["namespace"]
    assert role["rules"][0]["resources"] == ["vectorstores", "apikeys"]
    assert not find(no_index, "Role", "layer-gateway-index-reader")
    assert layer_yaml(no_index)["gateway"]["kubernetes"]["indexes"] is False
    elsewhere = render(merge(REQUIRED, {"gateway": {"indexNamespace": "idx"}}))
    assert one(elsewhere, "Role", "layer-gateway-reader")["rules"][0]["resources"] == ["vectorstores", "apikeys"]
    idx = one(elsewhere, "Role", "layer-gateway-index-reader")
    assert idx["metadata"]["namespace"] == "idx"
    assert idx["rules"] == [{"apiGroups": ["hevlayer.com"], "resources": ["indexes"], "verbs": ["get", "list", "watch"]}]
    binding = one(elsewhere, "RoleBinding", "layer-gateway-index-reader")
    assert binding["metadata"]["namespace"] == "idx" and binding["subjects"][0]["name"] == "layer"
    assert layer_yaml(elsewhere)["gateway"]["kubernetes"]["indexNamespace"] == "idx"
    for role in ("hevlayer-key-admin", "hevlayer-key-viewer"):
        cr = one(docs, "ClusterRole", role)
        assert not [k for k in cr["metadata"]["labels"] if "aggregate-to" in k]
    viewer = one(docs, "ClusterRole", "hevlayer-key-viewer")
    assert {v for r in viewer["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    admin = one(docs, "ClusterRole", "hevlayer-key-admin")
    assert "create" in admin["rules"][0]["verbs"] and admin["rules"][0]["resources"] == ["apikeys"]
    assert not find(docs, "ClusterRoleBinding", "layer-key-admin")
    everything = rendered["everything-on"]
    a = one(everything, "ClusterRoleBinding", "layer-key-admin")
    assert a["roleRef"]["name"] == "hevlayer-key-admin"
    assert a["subjects"] == [{"kind": "Group", "name": "platform-admins", "apiGroup": "rbac.authorization.k8s.io"}]
    v = one(everything, "ClusterRoleBinding", "layer-key-viewer")
    assert v["subjects"][1] == {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}


def test_operator(rendered):
    assert not [d for d in rendered["default"] if d["metadata"]["name"].startswith("layer-operator")]
    docs = rendered["operator-cluster"]
    dep = one(docs, "Deployment", "layer-operator")
    c = container(dep, "operator")
    assert c["image"] == "ecr/layer-operator:0.1.0" and c["imagePullPolicy"] == "Always"
    env = env_of(c)
    assert env["LAYER_GATEWAY_URL"]["value"] == "http://layer-gateway.layer.svc:8080"
    assert env["LAYER_GATEWAY_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "layer", "key": "turbopuffer-api-key"}
    assert env["LAYER_OPERATOR_MAX_REPLICAS_CEILING"]["value"] == "100"
    cr = one(docs, "ClusterRole", "layer-operator")
    kinds = {res for r in cr["rules"] if r["apiGroups"] == ["hevlayer.com"] for res in r["resources"]}
    for k in ("vectorstores", "indexes", "pipelines", "functions", "apikeys", "warehouses", "agents", "infrarules"):
        assert k in kinds, k
    assert any(r["apiGroups"] == ["keda.sh"] for r in cr["rules"])
    # What layer-operator creates besides Deployments: KEDA TriggerAuthentications (a Pipeline's
    # status-route scaler) and the Service of a push-dispatch Function.
    made = {res for r in cr["rules"] if "create" in r["verbs"] for res in r["resources"]}
    assert {"deployments", "scaledobjects", "triggerauthentications", "services", "secrets"} <= made
    lease = one(docs, "Role", "layer-operator-leader")
    assert {"coordination.k8s.io", "apps", ""} == {g for r in lease["rules"] for g in r["apiGroups"]}
    # The document cache the operator checks InfraRules/default's policy against: named, read
    # only, in the release namespace (also when the operator watches another namespace).
    sts = one(docs, "StatefulSet", "layer-document-cache")
    assert env["LAYER_DOCUMENT_CACHE_NAME"]["value"] == sts["metadata"]["name"]
    reads = [r for r in lease["rules"] if r["apiGroups"] != ["coordination.k8s.io"]]
    assert reads == [
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "resourceNames": ["layer-document-cache"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["layer-document-cache"], "verbs": ["get"]},
    ]
    assert lease["metadata"]["namespace"] == sts["metadata"]["namespace"]
    assert not find(docs, "Role", "layer-operator")
    scrape = yaml.safe_load(one(docs, "ConfigMap", "layer-metrics")["data"]["scrape.yaml"])
    assert [j["job_name"] for j in scrape["scrape_configs"]] == ["layer-gateway", "layer-operator", "layer-document-cache"]
    scoped = rendered["operator-namespaced"]
    cr = one(scoped, "ClusterRole", "layer-operator")
    assert {res for r in cr["rules"] for res in r["resources"]} == {"infrarules", "infrarules/status"}
    role = one(scoped, "Role", "layer-operator")
    assert role["metadata"]["namespace"] == "team-a"
    assert any("deployments" in r["resources"] for r in role["rules"])
    infra = one(docs, "InfraRules", "default")
    assert [p["name"] for p in infra["spec"]["computePools"]] == ["cpu", "cpu-large", "gpu"]
    assert "namespace" not in infra["metadata"]


def test_values_keep_the_documented_charts_names_and_defaults():
    """Every key of the documented product's values.yaml (reference_values.txt, values cut at 60
    characters there) exists here with the same default, except the deviations listed below."""
    deviations = {
        # Layer's gateway runs one shard runtime per core; 0 says so (the documented chart's 16).
        "gateway.shardCount",
        # The reference cut these at 60 characters (digest pins); the tags here are unpinned.
        "gateway.lattice.artifact.image",
        "gateway.localClip.artifact.image",
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing, differ = [], []
    for line in (HERE / "reference_values.txt").read_text().splitlines():
        key, _, want = line.partition(" = ")
        node = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
        else:
            if key in deviations:
                continue
            want_v = yaml.safe_load(want) if not want.endswith("...") else want
            if isinstance(want_v, str) and want_v.endswith("..."):
                ok = isinstance(node, str) and node.startswith(want_v[:-3])
            else:
                ok = node == want_v or str(node) == str(want_v)
            if not ok:
                differ.append((key, want, node))
    assert not missing, missing
    assert not differ, differ
    # install.md names operator.infraRules.create.
    assert values["operator"]["infraRules"]["create"] is True


def test_release_name_changes_every_name():
    with helm.Chart.load(str(CHART)) as chart:
        m = chart.render(REQUIRED, name="prod", namespace="search")
    text = "\n".join(m.values())
    assert "name: prod-layer-gateway" in text and "http://prod-layer-gateway.search.svc:8080" in text


@pytest.mark.skipif(not os.environ.get("LAYER_GATEWAY_BIN"), reason="LAYER_GATEWAY_BIN not set (scripts/test sets it)")
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_the_gateway_starts_with_the_rendered_config(rendered, value_set):
    """The rendered layer.yaml and the env the Deployment sets are accepted by the real gateway:
    it loads and validates them and binds (the listen address and data dir are moved to local
    ones, the network endpoints to a closed local port; Secret-backed variables get distinct
    placeholder values)."""
    docs = rendered[value_set]
    cfg = layer_yaml(docs)
    dep = one(docs, "Deployment", "layer-gateway")
    with tempfile.TemporaryDirectory() as tmp:
        cfg["gateway"]["listen"] = "127.0.0.1:0"
        cfg["gateway"]["dataDir"] = tmp
        # Offline: every network endpoint moves to a closed local port and the AWS side is off
        # (the run must not reach Turbopuffer, S3, Cost Explorer or instance metadata).
        offline = "http://127.0.0.1:9"
        cfg["gateway"]["cost"]["costExplorerEnabled"] = False
        cfg["gateway"]["objectStore"]["endpoint"] = offline
        for store in [cfg["vectorStore"], *cfg.get("vectorStores", [])]:
            store["endpoint"]["url"] = offline
        # No pod: the watch gets an API server on the closed port (it retries in the background).
        cfg["gateway"]["kubernetes"]["apiServer"] = offline
        if cfg["gateway"]["cache"]["tier"] == "aerospike":
            # The default build has no Aerospike backend; that tier is the chart's to name.
            cfg["gateway"]["cache"] = {"tier": "nvme"}
        path = pathlib.Path(tmp, "layer.yaml")
        path.write_text(yaml.safe_dump(cfg))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        for e in container(dep, "gateway")["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "secretKeyRef" in e.get("valueFrom", {}):
                env[e["name"]] = "postgresql://x:y@127.0.0.1:1/x" if e["name"] == "LAYER_DATABASE_URL" else f"placeholder-{e['name']}"
            else:
                env[e["name"]] = "2"  # LAYER_SHARDS from the CPU limit
        proc = subprocess.Popen([os.environ["LAYER_GATEWAY_BIN"], "--config", str(path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if "listening on" not in line:
                proc.wait(timeout=30)
                pytest.fail(f"{value_set}: gateway did not start: {line}{proc.stderr.read()[-2000:]}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_secrets_stay_out_of_configmaps_and_pod_specs(rendered):
    """Credentials, key tokens, the license and basic auth reach pods through Secrets only."""
    secrets = ["tpuf_test_upstream", "layer_worker_key", "s3cret", "claims.sig", "tpuf_eu",
               "postgresql://layer:pw@"]
    for name, docs in rendered.items():
        for d in docs:
            if d["kind"] == "Secret":
                continue
            text = json.dumps(strip(d))
            for s in secrets:
                assert s not in text, (name, d["kind"], d["metadata"]["name"], s)
    docs = rendered["everything-on"]
    assert one(docs, "Secret", "layer")["stringData"]["license"] == "claims.sig"
    assert layer_yaml(docs)["gateway"]["license"] == {"file": "/etc/layer/license/license"}
    mounts = {m["name"]: m for m in container(one(docs, "Deployment", "layer-gateway"), "gateway")["volumeMounts"]}
    assert mounts["license"]["mountPath"] == "/etc/layer/license"


def tolerates(tolerations, taint) -> bool:
    for t in tolerations:
        if t.get("key") != taint["key"] or t.get("effect", taint["effect"]) != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists" or t.get("value") == taint.get("value"):
            return True
    return False


KARPENTER_CRDS = HERE / "karpenter-crds"


def karpenter_schemas() -> dict:
    """openAPIV3Schema per (apiVersion, kind) of Karpenter's released CRDs (karpenter-crds/)."""
    out = {}
    for f in sorted(KARPENTER_CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(f.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                for v in crd["spec"]["versions"]:
                    out[(f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return out


def unknown_fields(obj, schema, path="") -> list[str]:
    """Fields the schema does not declare (the API server would prune them silently)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for k, v in obj.items():
            if props is not None and k in props:
                out += unknown_fields(v, props[k], f"{path}.{k}")
            elif isinstance(extra, dict):
                out += unknown_fields(v, extra, f"{path}.{k}")
            elif props is not None or extra is False:
                out.append(f"{path}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += unknown_fields(v, schema["items"], f"{path}[{i}]")
    return out


def test_karpenter_objects_match_karpenters_released_crds(rendered):
    schemas = karpenter_schemas()
    assert set(schemas) == {("karpenter.sh/v1", "NodePool"), ("karpenter.k8s.aws/v1", "EC2NodeClass")}
    docs = [d for d in rendered["karpenter-on"] if d["kind"] in ("NodePool", "EC2NodeClass")]
    assert len(docs) == 6
    for d in docs:
        schema = schemas[(d["apiVersion"], d["kind"])]
        jsonschema.validate(d["spec"], schema["properties"]["spec"])
        assert not unknown_fields(d["spec"], schema["properties"]["spec"], "spec"), d["metadata"]["name"]
    # The strict walk is no blanket pass: a misspelt field is reported.
    ec2 = schemas[("karpenter.k8s.aws/v1", "EC2NodeClass")]["properties"]["spec"]
    assert unknown_fields({"amiSelectorTerms": [{"ssmParameterz": "x"}]}, ec2, "spec") == ["spec.amiSelectorTerms[0].ssmParameterz"]


def test_karpenter_pools_are_off_by_default(rendered):
    for name in VALUE_SETS:
        if name != "karpenter-on":
            assert not find(rendered[name], "NodePool") and not find(rendered[name], "EC2NodeClass"), name


def test_karpenter_pools_match_the_stock_compute_pools(rendered):
    """Every stock InfraRules pool lands on a rendered NodePool: its nodeSelector is a subset of the
    pool's node labels and its tolerations cover every taint of that pool."""
    docs = rendered["karpenter-on"]
    pools = {p["metadata"]["name"]: p for p in find(docs, "NodePool")}
    classes = {c["metadata"]["name"]: c for c in find(docs, "EC2NodeClass")}
    assert set(pools) == {"worker-cpu", "worker-gpu", "layer-document-cache"}
    for p in pools.values():
        ref = p["spec"]["template"]["spec"]["nodeClassRef"]
        assert ref["kind"] == "EC2NodeClass" and ref["group"] == "karpenter.k8s.aws" and ref["name"] in classes
    for c in classes.values():
        assert c["spec"]["instanceProfile"] == "layer-karpenter-node"
        assert c["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "layer"}}]
        assert c["spec"]["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "layer"}}]
        assert c["spec"]["amiSelectorTerms"][0]["ssmParameter"].startswith("/aws/service/eks/optimized-ami/")
    infra = one(docs, "InfraRules", "default")
    for cp in infra["spec"]["computePools"]:
        matches = [
            p
            for p in pools.values()
            if cp["nodeSelector"].items() <= p["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, cp["name"]
        taints = matches[0]["spec"]["template"]["spec"].get("taints", [])
        assert taints, matches[0]["metadata"]["name"]
        for taint in taints:
            assert tolerates(cp["tolerations"], taint), (cp["name"], taint)
    gpu = pools["worker-gpu"]["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in gpu["taints"]
    assert gpu["requirements"][0] == {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge"]}
    assert classes["worker-gpu"]["spec"]["amiSelectorTerms"][0]["ssmParameter"].endswith("/nvidia/recommended/image_id")
    # The document cache's NVMe pool: instance store as RAID0, labelled with documentCache.nodeRole,
    # which is what the document cache StatefulSet selects.
    assert classes["layer-document-cache"]["spec"]["instanceStorePolicy"] == "RAID0"
    labels = pools["layer-document-cache"]["spec"]["template"]["metadata"]["labels"]
    sts = one(docs, "StatefulSet", "layer-document-cache")
    assert sts["spec"]["template"]["spec"]["nodeSelector"].items() <= labels.items()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"workerKarpenter": {"enabled": True, "instanceProfile": "p"}}, "workerKarpenter.clusterName is required"),
        ({"workerKarpenter": {"enabled": True, "clusterName": "c"}}, "workerKarpenter.instanceProfile is required"),
        ({"documentCache": {"karpenter": {"enabled": True}}}, "documentCache.karpenter.clusterName"),
    ],
)
def test_karpenter_needs_its_cluster_and_instance_profile(values, message):
    with pytest.raises(Exception, match=re.escape(message)):
        render_raw(merge(REQUIRED, values))
