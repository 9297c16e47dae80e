#!/usr/bin/env python3
"""weir lab gRPC catalog client (grpcio): calls com.example.catalog.ProductService.

    catalog_client.py --target 10.200.1.14:50051 get --id 1
    catalog_client.py --target '[fd00:200:1::14]:50051' update --id 1 --delta -2
    catalog_client.py --target 10.200.1.14:50051 --calls get:1,update:1:5,get:9

`--calls` makes several calls, in order, on one channel and so on one HTTP/2 connection
(`update:ID` adds 1); `wait:PATH` in the list pauses until PATH exists (a test's cue). Prints one line per call: the RPC, the grpc.StatusCode name and, as JSON,
the reply (every field, by its JSON name) or, for another status, the status details:

    GetProduct OK {"id": 1, "name": "espresso machine", "priceCents": 24900, "stock": 12}
    GetProduct NOT_FOUND {"details": "no product with id 9"}

Exits 0 when the calls ran, whatever their status (a connection that fails gives UNAVAILABLE,
no answer within --timeout DEADLINE_EXCEEDED), and 2 on a usage error. Each call is made once:
retries are off, so a call a policy rejects is not made again behind the caller's back. The
Python modules are generated from catalog.proto (next to this file) with grpc_tools.protoc into
a temporary directory at startup. Needs grpcio and grpcio-tools (scripts/deps.sh installs them).
"""

import argparse
import json
import os
import sys
import time

from catalog_proto import as_dict, load_modules  # exits with a hint when grpcio is missing

import grpc


def parse_calls(parser, text):
    """`get:1,update:1:5,update:2` -> [("get", 1, None), ("update", 1, 5), ("update", 2, 1)];
    `wait:PATH` -> ("wait", PATH, None)."""
    calls = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if parts[0] == "wait" and len(parts) == 2 and parts[1]:
            calls.append(("wait", parts[1], None))
            continue
        try:
            if parts[0] == "get" and len(parts) == 2:
                calls.append(("get", int(parts[1]), None))
                continue
            if parts[0] == "update" and len(parts) in (2, 3):
                delta = int(parts[2]) if len(parts) == 3 else 1
                calls.append(("update", int(parts[1]), delta))
                continue
        except ValueError:
            pass
        parser.error("--calls: `%s` is not get:ID, update:ID, update:ID:DELTA or wait:PATH" % item)
    return calls


def wait_for(path):
    """Blocks until `path` exists (60 s at most: then exits 3)."""
    for _ in range(1200):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    print("wait:%s: the file did not appear within 60 s" % path, file=sys.stderr, flush=True)
    sys.exit(3)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="calls: get --id N | update --id N [--delta D] | --calls get:N,update:N[:D],...",
    )
    parser.add_argument("--target", required=True, help="HOST:PORT, [IPV6]:PORT")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default 5)")
    parser.add_argument(
        "--calls", help="several calls on one connection: get:ID,update:ID[:DELTA],..."
    )
    parser.add_argument(
        "--proto",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.proto"),
        help="the service definition (default: catalog.proto next to this script)",
    )
    commands = parser.add_subparsers(dest="command", metavar="{get,update}")
    get = commands.add_parser("get", help="GetProduct")
    get.add_argument("--id", type=int, required=True)
    update = commands.add_parser("update", help="UpdateStock")
    update.add_argument("--id", type=int, required=True)
    update.add_argument("--delta", type=int, default=1, help="added to the stock (default 1)")
    args = parser.parse_args()

    if args.calls is not None and args.command is not None:
        parser.error("give either --calls or one of get/update, not both")
    if args.calls is not None:
        calls = parse_calls(parser, args.calls)
    elif args.command == "get":
        calls = [("get", args.id, None)]
    elif args.command == "update":
        calls = [("update", args.id, args.delta)]
    else:
        parser.error("nothing to call: give get, update or --calls")
    for kind, id, _ in calls:
        if kind != "wait" and not 0 <= id < 2**32:
            parser.error("product id %d is out of range 0..2^32-1" % id)

    pb2, pb2_grpc = load_modules(args.proto)
    options = [
        ("grpc.enable_retries", 0),
        ("grpc.enable_http_proxy", 0),
        ("grpc.primary_user_agent", "weir-lab-catalog-client/1"),
    ]
    with grpc.insecure_channel(args.target, options=options) as channel:
        stub = pb2_grpc.ProductServiceStub(channel)
        for kind, id, delta in calls:
            if kind == "wait":
                wait_for(id)
                continue
            if kind == "get":
                rpc, method, request = "GetProduct", stub.GetProduct, pb2.GetProductRequest(id=id)
            else:
                rpc, method = "UpdateStock", stub.UpdateStock
                request = pb2.UpdateStockRequest(id=id, delta=delta)
            try:
                reply = as_dict(method(request, timeout=args.timeout))
                status = grpc.StatusCode.OK
            except grpc.RpcError as e:
                status = e.code()
                reply = {"details": e.details() or ""}
            print("%s %s %s" % (rpc, status.name, json.dumps(reply)), flush=True)


if __name__ == "__main__":
    main()
