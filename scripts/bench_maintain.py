"""Figures of scripts/bench-maintain.sh, read with pyiceberg from the SQL catalog.

  bench_maintain.py CATALOG_DB WAREHOUSE measure OUT.json
  bench_maintain.py CATALOG_DB WAREHOUSE compare BEFORE.json AFTER.json MAINTAIN.jsonl
"""

import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta

import duckdb
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

TABLES = ["health_data_raw", "health_data_errors", "health_data_daily_agg", "health_data_weekly_agg",
          "health_data_monthly_agg"]
RUNS = 5


def timed(fn):
    """Median and min of RUNS runs, in ms, and the last result."""
    times, result = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1)}, result


def local(path):
    return path.removeprefix("file://")


def tree(location):
    files, size = 0, 0
    for root, _, names in os.walk(local(location)):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(root, name))
    return files, size


def measure(catalog):
    figures = {}
    for name in TABLES:
        table = catalog.load_table(f"health_db.{name}")
        snapshot = table.current_snapshot()
        metadata_json = local(table.metadata_location)
        files, size = tree(table.metadata.location)
        figures[name] = {
            "data_files": len(table.inspect.files()),
            "manifests": len(snapshot.manifests(table.io)) if snapshot else 0,
            "snapshots": len(table.metadata.snapshots),
            "metadata_json_bytes": os.path.getsize(metadata_json),
            "files_under_table": files,
            "bytes_under_table": size,
        }
    raw = catalog.load_table("health_db.health_data_raw")
    figures["raw_full_scan"], rows = timed(lambda: raw.scan().to_arrow())
    figures["raw_rows"] = rows.num_rows
    # One user's month: the user with the most rows, the month of their first sample.
    users = rows.group_by("user_id").aggregate([("user_id", "count")]).sort_by([("user_id_count", "descending")])
    user = users.column("user_id")[0].as_py()
    first = min(v for u, v in zip(rows.column("user_id").to_pylist(), rows.column("start_date").to_pylist())
                if u == user)
    month = datetime(first.year, first.month, 1)
    end = (month + timedelta(days=32)).replace(day=1)
    where = And(EqualTo("user_id", user), GreaterThanOrEqual("start_date", month.isoformat()),
                LessThan("start_date", end.isoformat()))
    figures["user_month"] = {"user": user, "month": month.strftime("%Y-%m")}
    figures["user_month_pyiceberg"], month_rows = timed(lambda: raw.scan(row_filter=where).to_arrow())
    figures["user_month_rows"] = month_rows.num_rows

    def duck():
        con = duckdb.connect()
        con.register("raw", raw.scan(row_filter=where).to_arrow())
        return con.execute("SELECT data_type, count(*), avg(value) FROM raw GROUP BY data_type").fetchall()

    figures["user_month_duckdb"], _ = timed(duck)
    return figures


def compare(before, after, reports):
    print(f"\nraw rows {before['raw_rows']} -> {after['raw_rows']}; one user's month: {before['user_month']} "
          f"({before['user_month_rows']} -> {after['user_month_rows']} rows)")
    assert before["raw_rows"] == after["raw_rows"] and before["user_month_rows"] == after["user_month_rows"]
    print(f"{'table':<26}{'data files':>16}{'manifests':>14}{'snapshots':>14}{'metadata JSON B':>22}"
          f"{'files under table':>22}{'bytes under table':>26}")
    for name in TABLES:
        b, a = before[name], after[name]
        pair = lambda k: f"{b[k]} -> {a[k]}"  # noqa: E731
        print(f"{name:<26}{pair('data_files'):>16}{pair('manifests'):>14}{pair('snapshots'):>14}"
              f"{pair('metadata_json_bytes'):>22}{pair('files_under_table'):>22}{pair('bytes_under_table'):>26}")
    for key, label in [("raw_full_scan", "pyiceberg full scan of raw"),
                       ("user_month_pyiceberg", "one user's month, pyiceberg"),
                       ("user_month_duckdb", "one user's month, DuckDB over pyiceberg")]:
        print(f"{label:<42} median {before[key]['median_ms']:>8} ms -> {after[key]['median_ms']:>8} ms "
              f"(min {before[key]['min_ms']} -> {after[key]['min_ms']}; {RUNS} runs)")
    for report in reports:
        c = report.get("compaction", {})
        print(f"maintain {report['table']}: compacted {c.get('partitionsCompacted')} partitions, "
              f"{c.get('filesRewritten')} files -> {c.get('filesWritten')}, "
              f"expired {len(report.get('expiry', {}).get('snapshotsExpired', []))} snapshots, "
              f"deleted {report.get('expiry', {}).get('filesDeleted')} files and "
              f"{len(report.get('metadataFiles', {}).get('deleted', []))} metadata files")


def main(argv):
    db, warehouse, command, *rest = argv
    catalog = SqlCatalog("health_catalog", uri="sqlite:///" + db, warehouse=warehouse)
    if command == "measure":
        json.dump(measure(catalog), open(rest[0], "w"), default=str)
        return 0
    compare(json.load(open(rest[0])), json.load(open(rest[1])), [json.loads(line) for line in open(rest[2])])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
