"""Reads an upserted aggregate table with pyiceberg (an independent reader) and checks it against
what the test expects: every primary key once, the expected `count` per key now and in the
previous snapshot (time travel), and the newest snapshot's summary.

usage: check_upsert.py EXPECTATIONS.json
  {"catalog": {pyiceberg catalog properties, "name": ...}, "table": "db.table",
   "current": {"user|type|date": count}, "previous": {...}, "summary": {"operation": ..., ...}}
"""

import json
import sys
from collections import Counter

from pyiceberg.catalog import load_catalog

failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def counts_by_key(arrow):
    rows = arrow.select(["user_id", "data_type", "aggregation_date", "count"]).to_pylist()
    keys = Counter(f"{r['user_id']}|{r['data_type']}|{r['aggregation_date']}" for r in rows)
    duplicated = sorted(k for k, n in keys.items() if n > 1)
    return {f"{r['user_id']}|{r['data_type']}|{r['aggregation_date']}": r["count"] for r in rows}, duplicated


expect = json.load(open(sys.argv[1]))
props = dict(expect["catalog"])
catalog = load_catalog(props.pop("name"), **props)
table = catalog.load_table(expect["table"])
snapshot = table.current_snapshot()

current, duplicated = counts_by_key(table.scan().to_arrow())
check(not duplicated, f"no primary key twice in the current snapshot (duplicated: {duplicated[:5]})")
check(current == expect["current"], f"current rows as expected ({len(current)} keys)")

previous_id = snapshot.parent_snapshot_id
previous, duplicated = counts_by_key(table.scan(snapshot_id=previous_id).to_arrow())
check(not duplicated, "no primary key twice in the previous snapshot")
check(previous == expect["previous"], f"time travel to snapshot {previous_id} shows the old values")

summary = snapshot.summary
check(summary.operation.value == expect["summary"]["operation"], f"operation is {summary.operation.value}")
for key, value in expect["summary"].items():
    if key != "operation":
        check(summary[key] == value, f"summary {key} = {summary[key]} (expected {value})")

# The files the overwrite removed are gone from the scan plan; the new ones are there.
files = {task.file.file_path for task in table.scan().plan_files()}
check(len(files) == int(summary["total-data-files"]), f"scan plans {len(files)} files = total-data-files")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("upsert checks passed")
