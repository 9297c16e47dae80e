#!/usr/bin/env python3
"""weir lab gRPC catalog server (grpcio): the seeds' com.example.catalog.ProductService.

Serves GetProduct and UpdateStock (catalog.proto, next to this file) from an in-memory catalog
and appends one JSON line per call to a log file *before* answering, so a client that got its
answer can read the log right away:

    catalog_grpc.py --service catalog --port 50051 --log /run/weir-lab/weir/servers/x.requests.jsonl

    {"method": "/com.example.catalog.ProductService/GetProduct", "peer": "10.200.1.15",
     "peerPort": 41730, "request": {"id": 1}, "service": "catalog", "status": "OK", "time": ...}

`status` is the grpc.StatusCode name the call gets (OK, NOT_FOUND, FAILED_PRECONDITION, and
UNIMPLEMENTED for a method the service does not have, which is logged too). The Python modules
are generated from the .proto with grpc_tools.protoc into a temporary directory at startup, so
nothing generated is kept. Needs grpcio and grpcio-tools (scripts/deps.sh installs them).

It listens on [::], which gRPC makes dual-stack, so IPv4 clients reach it too. `--port 0` picks
a free port; the port it listens on is printed as `listening on <port>`.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from concurrent import futures

from catalog_proto import as_dict, load_modules  # exits with a hint when grpcio is missing

import grpc

SERVICE = "com.example.catalog.ProductService"

# id -> (name, price in cents, stock)
PRODUCTS = {
    1: ("espresso machine", 24900, 12),
    2: ("coffee grinder", 8900, 30),
    3: ("milk frother", 3900, 0),
}


def parse_peer(peer):
    """`ipv4:10.200.1.15:41730`, `ipv6:%5Bfd00:200:1::15%5D:41730` -> (address, port); IPv4-mapped
    IPv6 addresses are shown as IPv4."""
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    try:
        return host, int(port)
    except ValueError:
        return peer, 0


class RequestLog:
    def __init__(self, path):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        if self._file is None:
            return
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


class Catalog:
    def __init__(self, pb2, service, log):
        self.pb2 = pb2
        self.service = service
        self.log = log
        self.lock = threading.Lock()
        self.products = {id: list(p) for id, p in PRODUCTS.items()}

    def record(self, context, rpc, request, status):
        peer, peer_port = parse_peer(context.peer())
        self.log.write(
            {
                "service": self.service,
                "method": "/%s/%s" % (SERVICE, rpc),
                "peer": peer,
                "peerPort": peer_port,
                "request": request,
                "status": status.name,
                "time": time.time(),
            }
        )

    def GetProduct(self, request, context):
        with self.lock:
            product = self.products.get(request.id)
            product = list(product) if product else None
        status = grpc.StatusCode.OK if product else grpc.StatusCode.NOT_FOUND
        self.record(context, "GetProduct", as_dict(request), status)
        if product is None:
            context.abort(status, "no product with id %d" % request.id)
        name, price, stock = product
        return self.pb2.Product(id=request.id, name=name, price_cents=price, stock=stock)

    def UpdateStock(self, request, context):
        message = None
        with self.lock:
            product = self.products.get(request.id)
            if product is None:
                status = grpc.StatusCode.NOT_FOUND
                message = "no product with id %d" % request.id
            elif product[2] + request.delta < 0:
                status = grpc.StatusCode.FAILED_PRECONDITION
                message = "product %d has %d in stock, cannot take %d" % (
                    request.id,
                    product[2],
                    -request.delta,
                )
            else:
                status = grpc.StatusCode.OK
                product[2] += request.delta
                stock = product[2]
            # Logged under the lock, so the log's order is the order the stock changed in.
            self.record(context, "UpdateStock", as_dict(request), status)
        if message is not None:
            context.abort(status, message)
        return self.pb2.Stock(id=request.id, stock=stock)


class Unimplemented(grpc.GenericRpcHandler):
    """Logs calls to methods the server does not have, then answers UNIMPLEMENTED as gRPC would."""

    def __init__(self, service, log):
        self.service_name = service
        self.log = log

    def service(self, handler_call_details):
        method = handler_call_details.method

        def answer(request, context):
            peer, peer_port = parse_peer(context.peer())
            self.log.write(
                {
                    "service": self.service_name,
                    "method": method,
                    "peer": peer,
                    "peerPort": peer_port,
                    "request": {"bytes": len(request)},
                    "status": grpc.StatusCode.UNIMPLEMENTED.name,
                    "time": time.time(),
                }
            )
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found: %s" % method)

        return grpc.unary_unary_rpc_method_handler(answer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, help="service name put in every log line")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--bind", default="::", help="IPv6 address to listen on (default ::)")
    parser.add_argument("--log", help="file that gets one JSON line per call")
    parser.add_argument(
        "--proto",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.proto"),
        help="the service definition (default: catalog.proto next to this script)",
    )
    args = parser.parse_args()

    pb2, pb2_grpc = load_modules(args.proto)
    log = RequestLog(args.log)
    # No SO_REUSEPORT (gRPC's default): a second server on the port must fail, not share it.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)]
    )
    pb2_grpc.add_ProductServiceServicer_to_server(Catalog(pb2, args.service, log), server)
    server.add_generic_rpc_handlers((Unimplemented(args.service, log),))
    port = server.add_insecure_port("[%s]:%d" % (args.bind, args.port))
    server.start()
    print("listening on %d" % port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
