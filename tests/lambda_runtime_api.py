"""A local implementation of the AWS Lambda Runtime API (2018-06-01), enough to run a function's
`bootstrap` binary as Lambda's custom runtime does: the binary long-polls
`/runtime/invocation/next`, answers on `/runtime/invocation/<id>/response` or `/error`, and reports
a failed start on `/runtime/init/error`.

    api = RuntimeApi(function_name="healthlake-ingest")
    process = api.spawn([binary], env)          # the environment Lambda gives a provided.al2023 function
    kind, body, error_type = api.invoke({"eventSource": ...})
    api.stop_function(process)

Also measures what Lambda reports per cold start: the init duration (spawn to the first
`/next`) and the process's peak RSS (VmHWM).
"""

import json
import queue
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self, function_name, memory_mb=1024, timeout_s=300, region="us-east-1"):
        self.function_name = function_name
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.region = region
        self.pending = queue.Queue()
        self.results = {}
        self.results_ready = threading.Condition()
        self.init_errors = []
        self.first_next_at = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def lambda_environment(self):
        """The variables Lambda sets for every provided.al2023 function (besides credentials)."""
        name = self.function_name
        return {
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/12/03/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "_HANDLER": "bootstrap",
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }

    def spawn(self, command, env, log_path):
        self.first_next_at = None
        self.spawned_at = time.monotonic()
        log = open(log_path, "ab")
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def init_duration_ms(self, process, timeout_s=60):
        """Waits for the first `/next`: the function's init is over."""
        deadline = time.monotonic() + timeout_s
        while self.first_next_at is None:
            if process.poll() is not None:
                raise RuntimeError(f"the function exited during init with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the function did not ask for an invocation in time")
            time.sleep(0.005)
        return (self.first_next_at - self.spawned_at) * 1000

    def invoke(self, payload, timeout_s=600):
        """Queues one invocation and waits for its answer: ("response", body, None) or
        ("error", body, header) where body is {"errorType", "errorMessage"} and header the
        optional Lambda-Runtime-Function-Error-Type (lambda_runtime sends "unhandled")."""
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(payload).encode()))
        deadline = time.monotonic() + timeout_s
        with self.results_ready:
            while request_id not in self.results:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"no answer to invocation {request_id} in {timeout_s} s")
                self.results_ready.wait(remaining)
            return self.results.pop(request_id)

    @staticmethod
    def peak_rss_kib(process):
        with open(f"/proc/{process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def stop_function(self, process):
        """Lambda freezes and later kills an idle runtime; here it is killed at once."""
        if process.poll() is None:
            process.kill()
        process.wait()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def _answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:
                    pass  # a runtime that exits right after /init/error does not read the answer

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._answer(404, b'{"errorType":"NotFound"}')
                if api.first_next_at is None:
                    api.first_next_at = time.monotonic()
                request_id, body = api.pending.get()
                deadline_ms = int(time.time() * 1000) + api.timeout_s * 1000
                self._answer(200, body, [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     f"arn:aws:lambda:{api.region}:123456789012:function:{api.function_name}"),
                    ("Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0"),
                ])

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append((error_type, json.loads(body or b"{}")))
                    return self._answer(202, b'{"status":"OK"}')
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    decoded = json.loads(body) if body else None
                    with api.results_ready:
                        api.results[parts[1]] = (parts[2], decoded, error_type)
                        api.results_ready.notify_all()
                    return self._answer(202, b'{"status":"OK"}')
                self._answer(404, b'{"errorType":"NotFound"}')

        return Handler
