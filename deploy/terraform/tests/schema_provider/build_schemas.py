"""Schemas for the schema-only provider (README.md): `build(tf_dir, wheel, out_dir)` writes
aws.json, helm.json and tls.json for the resource and data-source types tf_dir uses."""

from __future__ import annotations

import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from aws_schema import ANCHOR, PREFIX, AwsSchema, snake  # noqa: E402

SKIP_PROPS = {"fqn", "creationStack", "internalValue", "terraformAttribute", "terraformResource", "tfResourceType"}
MAPS = {"cdktf.StringMap": "string", "cdktf.NumberMap": "number", "cdktf.BooleanMap": "bool", "cdktf.AnyMap": "dynamic"}
PRIMITIVE = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic", "json": "dynamic", "date": "string"}


class Converter:
    def __init__(self, schema: AwsSchema):
        self.s = schema
        self.types = schema.types

    def cty(self, t: dict, depth: int = 0):
        if depth > 12:
            return "dynamic"
        if "primitive" in t:
            return PRIMITIVE.get(t["primitive"], "dynamic")
        if "union" in t:
            real = [u for u in t["union"]["types"] if u.get("fqn") != "cdktf.IResolvable"]
            return self.cty(real[0], depth + 1) if real else "dynamic"
        if "collection" in t:
            kind = "list" if t["collection"]["kind"] == "array" else "map"
            return [kind, self.cty(t["collection"]["elementtype"], depth + 1)]
        fqn = t.get("fqn", "")
        if fqn in MAPS:
            return ["map", MAPS[fqn]]
        if not fqn.startswith(PREFIX) or fqn not in self.types:
            return "dynamic"
        target = self.types[fqn]
        if target.get("datatype"):
            return ["object", {a: v for a, v in self.struct_attrs(fqn, depth + 1).items()}]
        for suffix, kind in (("List", "list"), ("Map", "map")):
            ref = fqn[: -len(suffix)] + "OutputReference"
            if fqn.endswith(suffix) and ref in self.types:
                return [kind, self.object_of(ref, depth + 1)]
        if fqn.endswith("OutputReference"):
            return self.object_of(fqn, depth + 1)
        return "dynamic"

    def object_of(self, ref_fqn: str, depth: int):
        attrs = {}
        for p in self.types[ref_fqn].get("properties", []):
            if p["name"].endswith("Input") or p["name"] in SKIP_PROPS or p.get("static"):
                continue
            attrs[snake(p["name"])] = self.cty(p["type"], depth + 1)
        return ["object", attrs]

    def struct_attrs(self, fqn: str, depth: int) -> dict:
        out = {}
        for p in self.types[fqn].get("properties", []):
            m = ANCHOR.search(p.get("docs", {}).get("summary", ""))
            out[m.group(1) if m else snake(p["name"])] = self.cty(p["type"], depth + 1)
        return out

    def block(self, struct_fqn: str, computed_from: str | None, depth: int = 0) -> dict:
        """A config struct as a schema block; computed_from: the class (resource, or a block's
        OutputReference) whose getters add the computed-only attributes."""
        args = self.s.struct(struct_fqn)
        props = {p["name"]: p for p in self.types[struct_fqn].get("properties", [])}
        by_name = {}
        for p in props.values():
            m = ANCHOR.search(p.get("docs", {}).get("summary", ""))
            by_name[m.group(1) if m else snake(p["name"])] = p
        attributes, blocks = [], []
        for name, arg in args.items():
            if arg.block:
                ref = arg.block + "OutputReference"
                blocks.append(
                    {
                        "name": name,
                        "block": self.block(arg.block, ref if ref in self.types else None, depth + 1),
                        "min_items": 1 if arg.required else 0,
                        "max_items": 0 if arg.is_list else 1,
                    }
                )
            else:
                attr = {"name": name, "type": self.cty(by_name[name]["type"])}
                if arg.required:
                    attr["required"] = True
                else:
                    attr["optional"] = attr["computed"] = True
                attributes.append(attr)
        declared = set(args)
        if computed_from and computed_from in self.types:
            for p in self.types[computed_from].get("properties", []):
                name = snake(p["name"])
                if p["name"].endswith("Input") or p["name"] in SKIP_PROPS or p.get("static") or name in declared:
                    continue
                attributes.append({"name": name, "type": self.cty(p["type"]), "computed": True})
        return {"attributes": attributes, "block_types": blocks}


def used_types(tf_dir: pathlib.Path) -> tuple[set[str], set[str]]:
    text = "\n".join(f.read_text() for f in tf_dir.glob("*.tf"))
    return set(re.findall(r'^resource "(\w+)"', text, re.M)), set(re.findall(r'^data "(\w+)"', text, re.M))


def aws(schema: AwsSchema, resources: set[str], data: set[str]) -> dict:
    c = Converter(schema)
    index = schema._index()
    out = {"provider": c.block(f"{PREFIX}provider.AwsProviderConfig", None), "resources": {}, "data_sources": {}}
    for kind, names, is_data in (("resources", resources, False), ("data_sources", data, True)):
        for name in sorted(n for n in names if n.startswith("aws_")):
            cls = index[(is_data, name)]
            out[kind][name] = c.block(cls + "Config", cls)
    return out


def attr(name, type_, required=False, computed=False):
    a = {"name": name, "type": type_}
    if required:
        a["required"] = True
    elif computed and name in ("id", "status", "manifest", "metadata", "certificates"):
        a["computed"] = True
    else:
        a["optional"] = a["computed"] = True
    return a


# hashicorp/helm 2.x: the provider's kubernetes/exec blocks and helm_release's common arguments.
HELM = {
    "provider": {
        "block_types": [
            {
                "name": "kubernetes",
                "max_items": 1,
                "block": {
                    "attributes": [
                        attr("host", "string"),
                        attr("cluster_ca_certificate", "string"),
                        attr("config_path", "string"),
                        attr("config_context", "string"),
                        attr("token", "string"),
                        attr("insecure", "bool"),
                    ],
                    "block_types": [
                        {
                            "name": "exec",
                            "max_items": 1,
                            "block": {
                                "attributes": [
                                    attr("api_version", "string", required=True),
                                    attr("command", "string", required=True),
                                    attr("args", ["list", "string"]),
                                    attr("env", ["map", "string"]),
                                ]
                            },
                        }
                    ],
                },
            }
        ]
    },
    "resources": {
        "helm_release": {
            "attributes": [
                attr("name", "string", required=True),
                attr("chart", "string", required=True),
                attr("namespace", "string"),
                attr("repository", "string"),
                attr("version", "string"),
                attr("values", ["list", "string"]),
                attr("create_namespace", "bool"),
                attr("wait", "bool"),
                attr("timeout", "number"),
                attr("atomic", "bool"),
                attr("id", "string", computed=True),
                attr("status", "string", computed=True),
                attr("manifest", "string", computed=True),
            ],
            "block_types": [
                {"name": "set", "block": {"attributes": [attr("name", "string", required=True), attr("value", "string", required=True), attr("type", "string")]}},
            ],
        }
    },
    "data_sources": {},
}

# hashicorp/tls: the tls_certificate data source.
TLS = {
    "provider": {},
    "resources": {},
    "data_sources": {
        "tls_certificate": {
            "attributes": [
                attr("url", "string"),
                attr("content", "string"),
                attr("verify_chain", "bool"),
                attr("id", "string", computed=True),
                attr(
                    "certificates",
                    [
                        "list",
                        [
                            "object",
                            {
                                "sha1_fingerprint": "string",
                                "subject": "string",
                                "issuer": "string",
                                "serial_number": "string",
                                "is_ca": "bool",
                                "version": "number",
                                "public_key_algorithm": "string",
                                "signature_algorithm": "string",
                                "not_before": "string",
                                "not_after": "string",
                                "cert_pem": "string",
                            },
                        ],
                    ],
                    computed=True,
                ),
            ]
        }
    },
}


def build(tf_dir: pathlib.Path, wheel: str, out_dir: pathlib.Path) -> None:
    resources, data = used_types(tf_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "aws.json").write_text(json.dumps(aws(AwsSchema(wheel), resources, data)))
    (out_dir / "helm.json").write_text(json.dumps(HELM))
    (out_dir / "tls.json").write_text(json.dumps(TLS))
    unknown = {t for t in resources | data if not t.startswith(("aws_", "helm_", "tls_"))}
    assert not unknown, unknown
