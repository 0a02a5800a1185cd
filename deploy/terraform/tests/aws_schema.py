"""The hashicorp/aws provider's resource and data source schemas, for checking the configuration
without the provider binary (which only the Terraform registry serves).

Source: the prebuilt CDK for Terraform bindings on PyPI, `cdktf-cdktf-provider-aws` 21.22.1, which
were generated from hashicorp/aws 6.25.0's provider schema. Its wheel carries the jsii assembly
(`_jsii/provider-aws@<v>.jsii.tgz`): one struct per resource/data-source configuration and nested
block, each property documented with a link whose anchor is the Terraform argument's name
(`.../docs/resources/eks_node_group#desired_size EksNodeGroup#desired_size`). Nothing is imported
from the package (its runtime needs Node.js); the wheel is read as a zip.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile

PREFIX = "@cdktf/provider-aws."
ANCHOR = re.compile(r"/docs/(?:resources|data-sources)/\w+#(\w+) ")
CLASS_DOC = re.compile(r"Represents a \{@link https://\S+/docs/(resources|data-sources)/\w+ (?:data\.)?(aws_\w+)\}")


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def load_types(wheel: str) -> dict:
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
        with z.open(member) as raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            f = tar.extractfile("package/.jsii")
            assert f is not None
            return json.load(f)["types"]


class Arg:
    def __init__(self, name: str, required: bool, block: str | None, is_list: bool):
        self.name, self.required, self.block, self.is_list = name, required, block, is_list


class AwsSchema:
    def __init__(self, wheel: str):
        self.types = load_types(wheel)
        self._structs: dict[str, dict[str, Arg]] = {}
        self._classes: dict[tuple[bool, str], str] | None = None

    def _index(self) -> dict[tuple[bool, str], str]:
        """(is a data source, Terraform type) -> the class that represents it, found by the class's
        own docs ("Represents a {@link .../docs/resources/eks_node_group aws_eks_node_group}"):
        the generator renames classes whose names collide (S3BucketVersioningA)."""
        if self._classes is None:
            self._classes = {}
            for fqn, t in self.types.items():
                m = CLASS_DOC.search(t.get("docs", {}).get("summary", "")) if fqn.startswith(PREFIX) else None
                if m and t.get("kind") == "class":
                    self._classes[(m.group(1) == "data-sources", m.group(2))] = fqn
        return self._classes

    def config(self, tf_type: str, data: bool = False) -> dict[str, Arg] | None:
        fqn = self._index().get((data, tf_type))
        return self.struct(fqn + "Config") if fqn and fqn + "Config" in self.types else None

    def attributes(self, tf_type: str, data: bool = False) -> set[str] | None:
        """Every attribute an expression can read (arguments and computed attributes)."""
        fqn = self._index().get((data, tf_type))
        if fqn is None:
            return None
        props = self.types[fqn].get("properties", [])
        return {snake(p["name"]) for p in props if not p["name"].endswith("Input")} - {"tf_resource_type"}

    def struct(self, fqn: str) -> dict[str, Arg]:
        if fqn in self._structs:
            return self._structs[fqn]
        out: dict[str, Arg] = {}
        for p in self.types[fqn].get("properties", []):
            m = ANCHOR.search(p.get("docs", {}).get("summary", ""))
            name = m.group(1) if m else snake(p["name"])
            block, is_list = self._nested(p["type"])
            out[name] = Arg(name, not p.get("optional"), block, is_list)
        self._structs[fqn] = out
        return out

    def _nested(self, t: dict) -> tuple[str | None, bool]:
        if "fqn" in t and t["fqn"].startswith(PREFIX) and self.types.get(t["fqn"], {}).get("datatype"):
            return t["fqn"], False
        if "collection" in t:
            inner, _ = self._nested(t["collection"]["elementtype"])
            return inner, True
        if "union" in t:
            for u in t["union"]["types"]:
                inner, is_list = self._nested(u)
                if inner:
                    return inner, is_list
        return None, False
