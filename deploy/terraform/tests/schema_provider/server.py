#!/usr/bin/env python3
"""A schema-only Terraform provider (see README.md): `server.py <schema.json>`.

Speaks go-plugin's handshake and Terraform's plugin protocol 5 over gRPC (stubs generated from
tfplugin5.8.proto into $LAYER_TFPLUGIN_STUBS), serves the schema in the JSON file and accepts every
configuration. It plans and applies nothing: `terraform test` runs it under `mock_provider`.
"""

import json
import os
import sys
import threading
from concurrent import futures

sys.path.insert(0, os.environ["LAYER_TFPLUGIN_STUBS"])

import grpc  # noqa: E402
import tfplugin5_pb2 as pb  # noqa: E402
import tfplugin5_pb2_grpc as rpc  # noqa: E402

COOKIE = ("TF_PLUGIN_MAGIC_COOKIE", "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2")


def block(b: dict) -> pb.Schema.Block:
    out = pb.Schema.Block()
    for a in b.get("attributes", []):
        out.attributes.append(
            pb.Schema.Attribute(
                name=a["name"],
                type=json.dumps(a["type"]).encode(),
                required=a.get("required", False),
                optional=a.get("optional", False),
                computed=a.get("computed", False),
            )
        )
    for nb in b.get("block_types", []):
        out.block_types.append(
            pb.Schema.NestedBlock(
                type_name=nb["name"],
                block=block(nb["block"]),
                nesting=pb.Schema.NestedBlock.LIST,
                min_items=nb.get("min_items", 0),
                max_items=nb.get("max_items", 0),
            )
        )
    return out


class Provider(rpc.ProviderServicer):
    def __init__(self, schema: dict):
        self.schema = schema
        self.response = pb.GetProviderSchema.Response(provider=pb.Schema(block=block(schema["provider"])))
        for name, b in schema["resources"].items():
            self.response.resource_schemas[name].CopyFrom(pb.Schema(block=block(b)))
        for name, b in schema["data_sources"].items():
            self.response.data_source_schemas[name].CopyFrom(pb.Schema(block=block(b)))

    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(
            resources=[pb.GetMetadata.ResourceMetadata(type_name=n) for n in self.schema["resources"]],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=n) for n in self.schema["data_sources"]],
        )

    def GetSchema(self, request, context):
        return self.response

    def PrepareProviderConfig(self, request, context):
        return pb.PrepareProviderConfig.Response(prepared_config=request.config)

    def ValidateResourceTypeConfig(self, request, context):
        return pb.ValidateResourceTypeConfig.Response()

    def ValidateDataSourceConfig(self, request, context):
        return pb.ValidateDataSourceConfig.Response()

    def Configure(self, request, context):
        return pb.Configure.Response()

    def GetFunctions(self, request, context):
        return pb.GetFunctions.Response()

    def Stop(self, request, context):
        return pb.Stop.Response()


def health(request: bytes, context) -> bytes:
    return b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}


def shutdown(request: bytes, context) -> bytes:
    """go-plugin's GRPCController.Shutdown: exit right away (otherwise the client waits two
    seconds before killing the process)."""
    threading.Timer(0.05, lambda: os._exit(0)).start()
    return b""  # google.protobuf.Empty


def main() -> None:
    if os.environ.get(COOKIE[0]) != COOKIE[1]:
        sys.exit("This is a Terraform provider plugin: Terraform starts it.")
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_ProviderServicer_to_server(Provider(schema), server)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(health)}
            ),
            grpc.method_handlers_generic_handler(
                "plugin.GRPCController", {"Shutdown": grpc.unary_unary_rpc_method_handler(shutdown)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # go-plugin: core protocol 1, app protocol 5, tcp, address, grpc (no certificate: the tests
    # set TF_DISABLE_PLUGIN_TLS).
    print(f"1|5|tcp|127.0.0.1:{port}|grpc", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
