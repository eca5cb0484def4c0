"""Runs the four function binaries as Lambda's custom runtime runs them (tests/lambda_runtime_api.py)
against the AWS emulator, and checks their Runtime API contract:

- ingest: Kafka events (with an undecodable record) answered with the ingest response; a
  redelivered batch writes nothing; strict validation fails a batch as `Permanent.IngestError`;
  an unreachable schema registry fails it as `Retryable.IngestError`; the registry's credentials
  come from a Secrets Manager secret (HEALTHLAKE_SCHEMA_REGISTRY_SECRET);
- finalize: the three schedules' payloads; a payload of an unknown kind is refused;
- backfill: a manual dry run;
- maintain: a dry run of every operation, then compaction and manifest rewrite of raw (the
  tables compared below must not change a row); a request below the orphan grace floor is
  refused as `Permanent.MaintainError`, an unknown table as `Permanent.InvalidInput`; a deadline
  closer than the function's margin stops it before any work (`complete: false`);
- a bad setting, or a secret that cannot be read, reaches `/init/error` naming the variable.

Every EMF line the functions print is checked against the EMF specification and its counts
against the invocations' answers; ingest's INFO logs carry request id, offsets and counts and no
user id or record value. Prints each binary's init duration and peak RSS. The tables are then compared with an embedded
run of the same events by tests/compare_tables.py.

usage: check_lambda_runtime.py ENDPOINT_URL EVENTS_DIR BIN_DIR WORK_DIR [METRIC_NAMES_OUT]
(the emulator's settings, from `scripts/aws-emulator.sh env`, in the environment)
"""

import base64
import copy
import glob
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

from lambda_runtime_api import RuntimeApi

REGISTRY_USER, REGISTRY_PASSWORD = "healthlake-ingest", "s3cr3t-for-the-registry"
PASSED_THROUGH = ("ICEBERG_", "S3_", "HEALTHLAKE_", "LOG_LEVEL")
failures = []


def check(condition, what):
    print(f"{'ok  ' if condition else 'FAIL'} {what}")
    if not condition:
        failures.append(what)


def serve_registry(schemas_dir):
    """A Confluent-compatible registry that wants basic auth: GET /schemas/ids/<id>."""
    expected = "Basic " + base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_GET(self):
            if self.headers.get("Authorization") != expected:
                return self._json(401, {"error_code": 40101, "message": "Unauthorized"})
            schema_id = self.path.rsplit("/", 1)[-1]
            path = os.path.join(schemas_dir, f"{schema_id}.avsc")
            if not self.path.startswith("/schemas/ids/") or not os.path.exists(path):
                return self._json(404, {"error_code": 40403, "message": "Schema not found"})
            with open(path) as f:
                self._json(200, {"schema": f.read()})

        def _json(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Function:
    """One cold start of a binary under the Runtime API; its stdout and stderr go to `self.log`."""

    starts = 0

    def __init__(self, name, bin_dir, work_dir, settings, timeout_s=300):
        self.name = name
        self.api = RuntimeApi(function_name=name, timeout_s=timeout_s)
        env = self.api.lambda_environment()
        env.update({k: v for k, v in os.environ.items() if k.startswith(PASSED_THROUGH)})
        # The execution role's credentials, as Lambda passes them.
        env.update({k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        env["AWS_SESSION_TOKEN"] = "emulator"
        env.update(settings)
        Function.starts += 1
        self.log = os.path.join(work_dir, f"{Function.starts:02d}-{name}.log")
        self.process = self.api.spawn([os.path.join(bin_dir, name)], env, self.log)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.api.stop_function(self.process)
        self.api.close()

    def invoke(self, payload):
        return self.api.invoke(payload)


EMF_UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
             "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
             "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
             "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
             "Count/Second", "None"}


def emf_documents(log_path, namespace, function_name):
    """Every EMF line of a function's output, each checked against the EMF specification
    (CloudWatch_Embedded_Metric_Format_Specification): an `_aws` object with an integer
    Timestamp and CloudWatchMetrics directives; each directive's Namespace, Dimensions (dimension
    sets of at most 30 names, each a top-level string) and Metrics (names of top-level numbers or
    arrays of at most 100 numbers, optional Unit)."""
    documents, problems = [], []
    for number, line in enumerate(open(log_path, encoding="utf-8", errors="replace"), 1):
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        where = f"{os.path.basename(log_path)}:{number}"
        aws = doc.get("_aws")
        if not isinstance(aws, dict) or not isinstance(aws.get("Timestamp"), int):
            problems.append(f"{where}: _aws.Timestamp missing or not an integer")
            continue
        directives = aws.get("CloudWatchMetrics")
        if not isinstance(directives, list) or not directives:
            problems.append(f"{where}: no CloudWatchMetrics directives")
            continue
        for directive in directives:
            if directive.get("Namespace") != namespace:
                problems.append(f"{where}: namespace {directive.get('Namespace')!r}, not {namespace!r}")
            for dimension_set in directive.get("Dimensions", []):
                if len(dimension_set) > 30:
                    problems.append(f"{where}: a dimension set of {len(dimension_set)} > 30")
                for name in dimension_set:
                    if not isinstance(doc.get(name), str) or not doc[name]:
                        problems.append(f"{where}: dimension {name} has no string value")
                if "function" not in dimension_set or doc.get("function") != function_name:
                    problems.append(f"{where}: no function={function_name} dimension: {dimension_set}")
            for metric in directive.get("Metrics", []):
                name, value = metric.get("Name"), doc.get(metric.get("Name"))
                if not name or len(name) > 255:
                    problems.append(f"{where}: bad metric name {name!r}")
                if "Unit" in metric and metric["Unit"] not in EMF_UNITS:
                    problems.append(f"{where}: {name}: unit {metric['Unit']!r}")
                values = value if isinstance(value, list) else [value]
                numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                if not values or len(values) > 100 or not numeric:
                    problems.append(f"{where}: {name} = {value!r} is not a number or an array of 1-100 numbers")
        if not isinstance(doc.get("requestId"), str):
            problems.append(f"{where}: no requestId property")
        documents.append(doc)
    return documents, problems


def emf_names(doc):
    return {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def emf_total(documents, metric, **labels):
    """The sum of a counter over every document whose dimensions include `labels`."""
    return sum(doc[metric] for doc in documents
               if metric in emf_names(doc) and all(doc.get(k) == v for k, v in labels.items()))


def emf_metric_names(documents):
    return set().union(*(emf_names(doc) for doc in documents)) if documents else set()


def log_lines(log_path):
    """The JSON log lines (not EMF) of a function's output."""
    lines = []
    for line in open(log_path, encoding="utf-8", errors="replace"):
        line = line.strip()
        if line.startswith("{") and '"_aws"' not in line:
            lines.append(json.loads(line))
    return lines


def kafka_events(events_dir):
    files = sorted(glob.glob(os.path.join(events_dir, "*.json")))
    return [json.load(open(f)) for f in files]


def undecodable_event(template):
    """A batch of one record that is neither Confluent-framed Avro nor JSON, at the offset after
    the template batch's last record of its first partition."""
    event = copy.deepcopy(template)
    key, records = next(iter(event["records"].items()))
    last = max(records, key=lambda r: r["offset"])
    record = dict(last, offset=last["offset"] + 1, value=base64.b64encode(b"\x07not avro, not json").decode())
    event["records"] = {key: [record]}
    return event


collected_names = set()


def check_ingest_emf(function, answers, invocations):
    """The warm container's EMF: valid, one flush per invocation, counts equal to its answers."""
    documents, problems = emf_documents(function.log, "healthlake", "healthlake-ingest")
    check(not problems, f"ingest: {len(documents)} EMF documents valid {problems[:3]}")
    request_ids = {d["requestId"] for d in documents}
    check(len(request_ids) == invocations, f"EMF from each of the {invocations} invocations ({len(request_ids)})")
    records = sum(a["records"] for a in answers)
    raw = sum(a["rawRowsWritten"] for a in answers)
    errors = sum(a["errorRowsWritten"] for a in answers)
    check(emf_total(documents, "ingest_records") == records, f"ingest_records = {records}")
    check(emf_total(documents, "ingest_raw_rows") == raw, f"ingest_raw_rows = {raw}")
    check(emf_total(documents, "valid_records") == raw, f"valid_records summed over data_type = {raw} raw rows")
    check(emf_total(documents, "ingest_error_rows") == errors, f"ingest_error_rows = {errors}")
    check(emf_total(documents, "deserialization_errors") >= 1, "the undecodable record counted")
    first_deliveries = invocations - 2
    check(emf_total(documents, "iceberg_writes_total", table_name="health_data_raw") == first_deliveries,
          f"one raw commit per first delivery ({first_deliveries}), none for the redelivery and the undecodable batch")
    lags = [v for d in documents for v in d.get("record_timestamp_lag_seconds", [])]
    check(len(lags) == invocations and all(lag > 0 for lag in lags),
          f"record_timestamp_lag_seconds once per invocation: {lags[:3]}")
    data_types = {d["data_type"] for d in documents if "data_type" in d}
    known = {"heartRate", "restingHeartRate", "walkingHeartRateAverage", "steps", "stepCount", "bloodPressure",
             "bloodPressureSystolic", "bloodPressureDiastolic", "other"}
    check(data_types and data_types <= known, f"data_type dimensions bounded: {sorted(data_types)}")
    collected_names.update(emf_metric_names(documents))


def check_ingest_logs(function, events):
    """INFO logs: JSON, with the request id, offsets and counts; no user id, value or payload."""
    lines = log_lines(function.log)
    applied = [line for line in lines if line.get("fields", {}).get("message") == "batch applied"]
    check(len(applied) == len(events) + 2, f"one 'batch applied' line per invocation ({len(applied)})")
    first = applied[0] if applied else {}
    spans = {k: v for span in first.get("spans", []) for k, v in span.items()}
    check("requestId" in spans and "offsets" in spans and first.get("fields", {}).get("records"),
          f"the line carries the request id, offsets and counts: {first}")
    text = open(function.log, encoding="utf-8", errors="replace").read()
    keys = {r["key"] for e in events for rs in e["records"].values() for r in rs if r.get("key")}
    users = {base64.b64decode(k).decode(errors="replace") for k in keys}
    leaked = sorted(u for u in users if u in text)
    check(users and not leaked, f"no user id of the {len(users)} in the logs {leaked[:3]}")
    values = [r["value"] for e in events for rs in e["records"].values() for r in rs][:50]
    check(not any(v in text for v in values), "no record value in the logs")


def main(endpoint, events_dir, bin_dir, work_dir, names_out=None):
    events = kafka_events(events_dir)
    assert len(events) >= 2, "need at least two event files"
    extra = undecodable_event(events[-1])
    with open(os.path.join(events_dir, "99999-undecodable.json"), "w") as f:
        json.dump(extra, f)  # the embedded run applies it too
    registry = serve_registry(os.path.join(events_dir, "schemas"))
    registry_url = f"http://127.0.0.1:{registry.server_address[1]}"
    secrets = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    secret_arn = secrets.create_secret(
        Name=f"healthlake/registry-{os.getpid()}",
        SecretString=json.dumps({"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}))["ARN"]
    ingest_settings = {
        "SCHEMA_REGISTRY_URL": registry_url,
        "HEALTHLAKE_SCHEMA_REGISTRY_SECRET": secret_arn,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
    }
    measured = {}

    def cold_start(function):
        measured[function.name] = {"init_ms": function.api.init_duration_ms(function.process)}

    def peak(function):
        measured[function.name]["peak_rss_mib"] = RuntimeApi.peak_rss_kib(function.process) / 1024

    print("== bad settings reach /init/error")
    for name, settings, variable, error_type in [
        ("healthlake-ingest", {"MAX_HEART_RATE": "fast"}, "MAX_HEART_RATE", "Runtime.InvalidConfiguration"),
        ("healthlake-finalize", {"ICEBERG_CATALOG_TYPE": "hadoop"}, "ICEBERG_CATALOG_TYPE",
         "Runtime.InvalidConfiguration"),
        ("healthlake-ingest", dict(ingest_settings, HEALTHLAKE_SCHEMA_REGISTRY_SECRET="healthlake/no-such-secret"),
         "HEALTHLAKE_SCHEMA_REGISTRY_SECRET", "Runtime.StartFailed"),
    ]:
        with Function(name, bin_dir, work_dir, settings) as function:
            status = function.process.wait(timeout=60)
            reported = function.api.init_errors
            check(status != 0, f"{name} with a bad {variable} exits ({status})")
            check(len(reported) == 1 and reported[0][0] == error_type
                  and reported[0][1].get("errorType") == error_type
                  and variable in reported[0][1].get("errorMessage", ""),
                  f"{name}: /init/error says {error_type} and names {variable}: {reported}")

    print("== ingest: strict validation fails a batch as permanent, before writing anything")
    with Function("healthlake-ingest", bin_dir, work_dir, dict(ingest_settings, VALIDATION_STRICT_MODE="true")) as f:
        kind, body, _ = f.invoke(events[0])
        check(kind == "error" and body["errorType"] == "Permanent.IngestError", f"strict mode: {body}")

    print("== ingest: an unreachable registry fails a batch as retryable")
    with Function("healthlake-ingest", bin_dir, work_dir, {"SCHEMA_REGISTRY_URL": "http://127.0.0.1:9"}) as f:
        kind, body, _ = f.invoke(events[0])
        check(kind == "error" and body["errorType"] == "Retryable.IngestError", f"registry down: {body}")

    print("== ingest: every batch, a redelivery, an undecodable record (one warm container)")
    with Function("healthlake-ingest", bin_dir, work_dir, dict(ingest_settings, LOG_LEVEL="INFO")) as f:
        ingest = f
        cold_start(f)
        total = {"records": 0, "rawRowsWritten": 0, "errorRowsWritten": 0}
        for event in events:
            kind, body, _ = f.invoke(event)
            check(kind == "response" and body["records"] > 0 and body["rowsSkippedAsCommitted"] == 0,
                  f"batch answered {body}")
            for key in total:
                total[key] += body[key]
        check(total["rawRowsWritten"] > 0 and total["errorRowsWritten"] > 0, f"all batches: {total}")
        answers = [total]
        kind, body, _ = f.invoke(events[1])
        answers.append(body)
        check(kind == "response" and body["rawRowsWritten"] == 0 and body["errorRowsWritten"] == 0
              and body["rowsSkippedAsCommitted"] > 0, f"redelivered batch writes nothing: {body}")
        kind, body, _ = f.invoke(extra)
        answers.append(body)
        check(kind == "response" and body == {"records": 1, "rawRowsWritten": 0, "errorRowsWritten": 1,
                                              "rowsSkippedAsCommitted": 0},
              f"undecodable record → one error row: {body}")
        peak(f)
    check_ingest_emf(ingest, answers, len(events) + 2)
    check_ingest_logs(ingest, events)

    print("== finalize: the three schedules")
    with Function("healthlake-finalize", bin_dir, work_dir, {}) as f:
        finalize = f
        cold_start(f)
        closed = 0
        kind, body, _ = f.invoke({"kind": "hourly"})
        check(kind == "error" and body["errorType"] == "Permanent.InvalidInput" and "hourly" in body["errorMessage"],
              f"unknown kind refused as permanent: {body}")
        for window_kind in ("daily", "weekly", "monthly"):
            kind, body, _ = f.invoke({"kind": window_kind})
            check(kind == "response" and body["kind"] == window_kind and body["windowsEmitted"] > 0
                  and body["watermark"], f"{window_kind}: {body}")
            closed += body["windowsClosed"]
        peak(f)
    documents, problems = emf_documents(finalize.log, "healthlake", "healthlake-finalize")
    check(not problems, f"finalize: {len(documents)} EMF documents valid {problems[:3]}")
    check(emf_total(documents, "windows_processed") == closed,
          f"finalize EMF windows_processed = windows closed ({closed})")
    lags = {d["window_type"]: d["finalize_lag_seconds"] for d in documents if "finalize_lag_seconds" in d}
    check(sorted(lags) == ["daily", "monthly", "weekly"] and all(len(v) == 1 and v[0] > 0 for v in lags.values()),
          f"finalize_lag_seconds once per kind: {lags}")
    collected_names.update(emf_metric_names(documents))

    print("== backfill: a manual dry run")
    with Function("healthlake-backfill", bin_dir, work_dir, {}) as f:
        cold_start(f)
        kind, body, _ = f.invoke({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z",
                                  "windowKinds": ["daily"], "dryRun": True})
        daily = (body or {}).get("kinds", {}).get("daily", {})
        check(kind == "response" and body.get("dryRun") is True and daily.get("windowsRecomputed", 0) > 0
              and daily.get("windowsChanged") == 0, f"backfill dry run finds nothing to change: {body}")
        peak(f)

    print("== maintain: dry run, compaction of raw, refusals, a deadline too close")
    every = ["compact", "rewrite_manifests", "expire", "orphans"]
    with Function("healthlake-maintain", bin_dir, work_dir, {}) as f:
        cold_start(f)
        kind, body, _ = f.invoke({"table": "raw", "operations": every, "min_input_files": 2, "dry_run": True})
        check(kind == "response" and body.get("dryRun") is True and body.get("complete") is True
              and body.get("compaction", {}).get("dryRun") is True and "orphans" in body,
              f"maintain dry run reports every operation: {str(body)[:300]}")
        kind, body, _ = f.invoke({"table": "raw", "operations": ["compact", "rewrite_manifests"],
                                  "min_input_files": 2})
        compaction = (body or {}).get("compaction", {})
        check(kind == "response" and body.get("complete") is True
              and compaction.get("filesAfter", 0) <= compaction.get("filesBefore", 0)
              and "manifests" in body, f"maintain compacts raw: {str(body)[:300]}")
        kind, body, _ = f.invoke({"table": "raw", "operations": ["orphans"], "grace_days": 0.5})
        check(kind == "error" and body["errorType"] == "Permanent.MaintainError" and "grace_days" in body["errorMessage"],
              f"a grace below a day is refused: {body}")
        kind, body, _ = f.invoke({"table": "hourly", "operations": ["compact"]})
        check(kind == "error" and body["errorType"] == "Permanent.InvalidInput", f"unknown table refused: {body}")
        peak(f)
    with Function("healthlake-maintain", bin_dir, work_dir, {}, timeout_s=60) as f:
        kind, body, _ = f.invoke({"table": "raw", "operations": every})
        check(kind == "response" and body.get("complete") is False and "compaction" not in body,
              f"a deadline within the margin stops maintain before any work: {str(body)[:200]}")

    registry.shutdown()
    if names_out:
        with open(names_out, "w") as f:
            f.write("\n".join(sorted(collected_names)) + "\n")
    print("\nfunction              init (ms)  peak RSS (MiB)   (debug build unless BIN_DIR is a release one)")
    for name, m in measured.items():
        print(f"{name:<21} {m['init_ms']:>9.1f}  {m.get('peak_rss_mib', 0):>14.1f}")
    if failures:
        print(f"\n{len(failures)} check(s) failed; the functions' logs are in {work_dir}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:6])
