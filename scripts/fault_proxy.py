"""A fault-injecting HTTP proxy in front of the AWS API emulator, for the fault tests.

    python scripts/fault_proxy.py UPSTREAM_URL PORT [--burst-every S] [--burst-length S]
                                  [--burst-rate P] [--base-rate P] [--seed N] [--stats FILE]

Listens on 127.0.0.1:PORT and forwards every request to UPSTREAM_URL (moto). In bursts (every
`--burst-every` seconds for `--burst-length` seconds) a request fails with probability
`--burst-rate` (`--base-rate` outside bursts), the way the real services fail under load:

- S3: 503 SlowDown, 500 InternalError, or a timeout (the proxy holds the request, then drops the
  connection without an answer);
- DynamoDB: 400 ThrottlingException or ProvisionedThroughputExceededException;
- Glue: 400 ConcurrentModificationException on table writes, ThrottlingException otherwise.

Most faults answer before forwarding (the request had no effect); one in four S3/DynamoDB faults
forwards first and then loses the answer (the effect happened, the client does not know), which
is what a timeout on a real service does. Counts per fault are written to `--stats` as JSON on
every change, so a test can assert that faults really happened.
"""

import argparse
import http.client
import json
import os
import random
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Faults:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.counts = {"requests": 0}

    def in_burst(self):
        elapsed = time.monotonic() - self.started
        return self.args.burst_every > 0 and elapsed % self.args.burst_every < self.args.burst_length

    def draw(self, service, operation):
        """The fault for this request (None: forward it untouched) and whether it hits after forwarding."""
        with self.lock:
            self.counts["requests"] += 1
            self.counts[f"requests:{service}"] = self.counts.get(f"requests:{service}", 0) + 1
            rate = self.args.burst_rate if self.in_burst() else self.args.base_rate
            if service == "glue":
                # Glue sees a few calls per batch: twice the rate, so every run meets its faults.
                rate = min(1.0, 2 * rate)
            if self.rng.random() >= rate:
                return None, False
            if service == "s3":
                fault = self.rng.choice(["SlowDown", "SlowDown", "InternalError", "timeout"])
            elif service == "dynamodb":
                fault = self.rng.choice(["ThrottlingException", "ProvisionedThroughputExceededException"])
            else:
                writes = ("UpdateTable", "CreateTable", "BatchCreatePartition", "DeleteTable")
                fault = "ConcurrentModificationException" if operation in writes else "ThrottlingException"
            after = service != "glue" and fault != "timeout" and self.rng.random() < 0.25
            key = f"{service}:{fault}{':after' if after else ''}"
            self.counts[key] = self.counts.get(key, 0) + 1
            self.write_stats()
            return fault, after

    def write_stats(self):
        if self.args.stats:
            with open(self.args.stats + ".tmp", "w") as f:
                json.dump(self.counts, f, sort_keys=True)
            # Atomic: a reader never sees half a file.
            os.replace(self.args.stats + ".tmp", self.args.stats)


def classify(headers):
    """(service, operation) of a request, from the JSON protocol's target header; else S3."""
    target = headers.get("X-Amz-Target", "")
    if target.startswith("DynamoDB_"):
        return "dynamodb", target.split(".", 1)[-1]
    if target.startswith("AWSGlue."):
        return "glue", target.split(".", 1)[-1]
    return "s3", ""


def error_response(service, fault):
    """(status, headers, body) of the service's own error format."""
    if service == "s3":
        status = 503 if fault == "SlowDown" else 500
        message = "Please reduce your request rate." if fault == "SlowDown" else "We encountered an internal error."
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{fault}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        return status, {"Content-Type": "application/xml", "x-amz-request-id": "fault-proxy"}, body
    prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else ""
    body = json.dumps({"__type": prefix + fault, "message": f"injected {fault}"}).encode()
    return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": fault}, body


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    faults: Faults
    upstream: urllib.parse.SplitResult

    def log_message(self, format, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        service, operation = classify(self.headers)
        fault, after = self.faults.draw(service, operation)
        if fault == "timeout":
            # Held long enough to look like a stalled connection, then dropped without an answer.
            time.sleep(self.faults.args.timeout_seconds)
            self.close_connection = True
            return
        if fault and not after:
            return self.answer(*error_response(service, fault))
        status, headers, payload = self.forward(body)
        if fault:
            return self.answer(*error_response(service, fault))
        self.answer(status, headers, payload)

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def forward(self, body):
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        out = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
        conn.close()
        return response.status, out, payload

    def answer(self, status, headers, payload):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream")
    parser.add_argument("port", type=int)
    parser.add_argument("--burst-every", type=float, default=20.0)
    parser.add_argument("--burst-length", type=float, default=4.0)
    parser.add_argument("--burst-rate", type=float, default=0.3)
    parser.add_argument("--base-rate", type=float, default=0.0)
    parser.add_argument("--timeout-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stats")
    args = parser.parse_args()
    Proxy.faults = Faults(args)
    Proxy.upstream = urllib.parse.urlsplit(args.upstream)
    Proxy.faults.write_stats()
    socketserver.TCPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Proxy)
    server.daemon_threads = True
    print(f"fault proxy on 127.0.0.1:{args.port} -> {args.upstream}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
