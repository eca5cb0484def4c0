"""Scrapes `healthlake exporter` and checks what it reports against the stores themselves, read
independently: the tables with pyiceberg (through the emulator's Glue), the state table with boto3.

usage: check_exporter.py EXPORTER_URL ENDPOINT_URL STATE_TABLE --lag-total N   (nothing consumed yet)
       check_exporter.py EXPORTER_URL ENDPOINT_URL STATE_TABLE --drained       (after the runner)
       ... [--names-out FILE]   also writes the metric names it saw, one per line

--lag-total N: the kafka source is up and the group's lag over all partitions is N (every
produced record), with the committed offset at the log start.
--drained: lag 0 on every partition; per table the snapshot age (±10 s of pyiceberg's current
snapshot), total records and data files equal pyiceberg's; open windows per kind equal the
state table's open items; error rows of the last hour by type equal a pyiceberg scan of the
errors table; every source up.
"""

import re
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import boto3
from pyiceberg.expressions import GreaterThanOrEqual

from check_kafka_run import open_catalog

TABLES = ["health_data_raw", "health_data_errors", "health_data_daily_agg", "health_data_weekly_agg",
          "health_data_monthly_agg"]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def scrape(url):
    """{name: {frozenset(labels): value}} of a Prometheus text exposition."""
    text = urllib.request.urlopen(url, timeout=60).read().decode()
    metrics = defaultdict(dict)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        metrics[name][pairs] = float(value)
    return metrics


def by(metrics, name, label):
    return {dict(labels)[label]: value for labels, value in metrics.get(name, {}).items()}


def open_items_per_kind(endpoint, table):
    """Accumulator items still open: closing removes `gsi_pk` (`open#<kind>#<shard>`)."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    counts = Counter()
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="gsi_pk",
                                                         FilterExpression="attribute_exists(gsi_pk)"):
        for item in page["Items"]:
            counts[item["gsi_pk"]["S"].split("#")[1]] += 1
    return counts


def check_drained(metrics, endpoint, state_table, scraped_at):
    lags = by(metrics, "kafka_consumer_lag", "partition")
    check(lags and all(v == 0 for v in lags.values()), f"lag 0 on every partition after the drain: {lags}")
    ups = by(metrics, "exporter_source_up", "source")
    check(ups == {"kafka": 1, "lake": 1, "state": 1, "errors": 1}, f"every source up: {ups}")
    lake = open_catalog(["--glue", endpoint])
    ages = by(metrics, "iceberg_snapshot_age_seconds", "table_name")
    records = by(metrics, "iceberg_table_records", "table_name")
    files = by(metrics, "iceberg_table_data_files", "table_name")
    for name in TABLES:
        table = lake.load_table(("health_db", name))
        snapshot = table.current_snapshot()
        age = scraped_at - snapshot.timestamp_ms / 1000
        check(abs(ages.get(name, -1e9) - age) <= 10, f"{name}: snapshot age {ages.get(name)} s ≈ {age:.1f} s")
        summary = snapshot.summary.additional_properties
        check(records.get(name) == float(summary["total-records"]),
              f"{name}: {records.get(name)} records = pyiceberg's {summary['total-records']}")
        check(files.get(name) == float(summary["total-data-files"]),
              f"{name}: {files.get(name)} data files = pyiceberg's {summary['total-data-files']}")
    open_windows = by(metrics, "open_windows", "window_type")
    expected = open_items_per_kind(endpoint, state_table)
    for kind in ("daily", "weekly", "monthly"):
        check(open_windows.get(kind) == expected.get(kind, 0),
              f"{kind}: {open_windows.get(kind)} open windows = the state table's {expected.get(kind, 0)}")
    since = datetime.fromtimestamp(scraped_at, timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
    errors = lake.load_table(("health_db", "health_data_errors"))
    rows = errors.scan(row_filter=GreaterThanOrEqual("error_timestamp", since.isoformat()),
                       selected_fields=("error_type",)).to_arrow()
    expected_errors = Counter(rows.column("error_type").to_pylist())
    reported = {k: int(v) for k, v in by(metrics, "error_rows_last_hour", "error_type").items()}
    check(expected_errors and reported == dict(expected_errors),
          f"error rows of the last hour by type = pyiceberg's {dict(expected_errors)}")


def main():
    args = sys.argv[1:]
    url, endpoint, state_table = args[0], args[1], args[2]
    scraped_at = time.time()
    metrics = scrape(url)
    if "--lag-total" in args:
        total = int(args[args.index("--lag-total") + 1])
        lags = by(metrics, "kafka_consumer_lag", "partition")
        check(by(metrics, "exporter_source_up", "source").get("kafka") == 1, "the kafka source is up")
        check(sum(lags.values()) == total and all(v > 0 for v in lags.values()),
              f"before the runner: lag {sum(lags.values()):.0f} = the {total} records produced, on {len(lags)} partitions")
    if "--drained" in args:
        check_drained(metrics, endpoint, state_table, scraped_at)
    if "--names-out" in args:
        with open(args[args.index("--names-out") + 1], "w") as f:
            f.write("\n".join(sorted(metrics)) + "\n")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
