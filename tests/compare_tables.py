"""Reads the tables of two healthlake runs over the same events with pyiceberg and checks they
hold the same data: the embedded run (SQL catalog, local files) and the AWS run (Glue catalog +
S3 on the emulator). Each table is compared row for row: raw and errors on their Kafka
coordinates, the aggregate tables on their primary keys, statistics to 1e-9 relative.

usage: compare_tables.py EMBEDDED_CATALOG_DB EMBEDDED_WAREHOUSE AWS_ENDPOINT
"""

import math
import re
import sys

from pyiceberg.catalog.glue import GlueCatalog
from pyiceberg.catalog.sql import SqlCatalog

# Keys each table holds once; a Kafka record can fail in several samples, so errors' rows are
# compared per record as a multiset.
TABLES = {
    "health_data_raw": ("kafka_partition", "kafka_offset", "sample_id"),
    "health_data_errors": ("kafka_partition", "kafka_offset"),
    "health_data_daily_agg": ("user_id", "data_type", "aggregation_date"),
    "health_data_weekly_agg": ("user_id", "data_type", "year", "week_of_year"),
    "health_data_monthly_agg": ("user_id", "data_type", "year", "month"),
}
# Written at processing time, so they differ between two runs by design.
VOLATILE = {
    "health_data_raw": {"processing_time"},
    "health_data_errors": {"error_timestamp", "error_date", "processing_time"},
    "health_data_daily_agg": {"created_at", "updated_at"},
    "health_data_weekly_agg": {"created_at", "updated_at"},
    "health_data_monthly_agg": {"created_at", "updated_at"},
}

failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


# Messages that quote the processing time differ between two runs by design.
PROCESSING_TIME = re.compile(r"processing time [0-9-]+ [0-9:.]+ UTC")


def same(a, b):
    if isinstance(a, str) and isinstance(b, str):
        return PROCESSING_TIME.sub("processing time T", a) == PROCESSING_TIME.sub("processing time T", b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


def rows_by_key(name, table, key):
    arrow = table.scan().to_arrow()
    columns = [c for c in arrow.column_names if c not in VOLATILE[name]]
    rows = {}
    for row in arrow.select(columns).to_pylist():
        rows.setdefault(tuple(row[k] for k in key), []).append(row)
    for group in rows.values():
        group.sort(key=repr)
    return arrow.num_rows, rows


def main(catalog_db, warehouse, endpoint):
    embedded = SqlCatalog("health_catalog", uri=f"sqlite:///{catalog_db}", warehouse=warehouse)
    aws = GlueCatalog(
        "health_catalog",
        **{
            "glue.endpoint": endpoint,
            "glue.region": "us-east-1",
            "glue.access-key-id": "testing",
            "glue.secret-access-key": "testing",
            "s3.endpoint": endpoint,
            "s3.region": "us-east-1",
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
        },
    )
    for name, key in TABLES.items():
        n_embedded, embedded_rows = rows_by_key(name, embedded.load_table(f"health_db.{name}"), key)
        aws_table = aws.load_table(f"health_db.{name}")
        check(aws_table.metadata_location.startswith("s3://"), f"{name} lives in S3 ({aws_table.metadata_location})")
        n_aws, aws_rows = rows_by_key(name, aws_table, key)
        check(n_aws == n_embedded and n_aws > 0, f"{name}: {n_aws} rows through Glue, {n_embedded} embedded")
        if name != "health_data_errors":
            check(all(len(v) == 1 for v in aws_rows.values()), f"{name}: no key twice through Glue")
        mismatched = [
            k for k in embedded_rows.keys() | aws_rows.keys()
            if k not in embedded_rows or k not in aws_rows
            or len(embedded_rows[k]) != len(aws_rows[k])
            or any(not same(a[c], b[c]) for a, b in zip(embedded_rows[k], aws_rows[k]) for c in a)
        ]
        check(not mismatched, f"{name}: same rows ({len(mismatched)} keys differ, e.g. {mismatched[:2]})")
        for k in mismatched[:1]:
            for a, b in zip(embedded_rows.get(k, []), aws_rows.get(k, [])):
                print("     embedded:", {c: a[c] for c in a if not same(a[c], b.get(c))})
                print("     through Glue:", {c: b[c] for c in b if not same(a.get(c), b[c])})
    raw = aws.load_table("health_db.health_data_raw")
    check("healthlake.kafka-offsets" in raw.current_snapshot().summary.additional_properties,
          "raw snapshot summary carries the offset map through Glue")
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
