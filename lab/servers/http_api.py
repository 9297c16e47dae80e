#!/usr/bin/env python3
"""weir lab HTTP API server (standard library only).

Answers every method on every path with 200 and a JSON object naming the service, the method
and the path, and appends one JSON line per request to a log file *before* answering, so a
client that got its answer can read the log right away.

    http_api.py --service users --port 80 --log /run/weir-lab/weir/servers/x.requests.jsonl

It listens on [::] with IPV6_V6ONLY off, so IPv4 clients reach it too. `--port 0` picks a free
port; the port it listens on is printed as `listening on <port>`.
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


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


def plain_address(address):
    """`::ffff:10.200.1.11` -> `10.200.1.11`."""
    return address[7:] if address.startswith("::ffff:") else address


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "weir-lab-http-api/1"
    service = "unknown"
    request_log = RequestLog(None)

    # BaseHTTPRequestHandler dispatches to `do_<METHOD>`; answer all of them.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.answer
        raise AttributeError(name)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self):
        body = self.read_body()
        path, _, query = self.path.partition("?")
        peer, peer_port = self.client_address[0], self.client_address[1]
        record = {
            "service": self.service,
            "method": self.command,
            "path": path,
            "query": query,
            "peer": plain_address(peer),
            "peerPort": peer_port,
            "host": self.headers.get("Host", ""),
            "bodyBytes": len(body),
            "status": 200,
            "time": time.time(),
        }
        self.request_log.write(record)
        reply = {
            "service": self.service,
            "method": self.command,
            "path": path,
            "query": query,
            "peer": plain_address(peer),
            "bodyBytes": len(body),
        }
        if path == "/healthz":
            reply["status"] = "ok"
        data = (json.dumps(reply) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, help="service name put in every answer")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--bind", default="::", help="IPv6 address to listen on (default ::)")
    parser.add_argument("--log", help="file that gets one JSON line per request")
    args = parser.parse_args()

    Handler.service = args.service
    Handler.request_log = RequestLog(args.log)
    server = DualStackServer((args.bind, args.port), Handler)
    print("listening on %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
