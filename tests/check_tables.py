"""Reads the tables healthlake wrote with an independent reader (pyiceberg) and checks them.

Usage: check_tables.py EXPECTED_JSON

EXPECTED_JSON comes from `healthlake demo --expect-out`: what the generator says must land.
Checks: row counts of raw and errors; every (partition, offset) of the input in raw or errors;
no duplicate primary key in the aggregate tables; one aggregate row per window kind recomputed
from the raw table; the Kafka offset map in the raw table's snapshot summary.
"""

import json
import math
import sys
from collections import Counter

import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog

failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def main(path, aggregates_overwritten=False):
    expected = json.load(open(path))
    catalog = SqlCatalog(
        expected["catalog_name"],
        uri="sqlite:///" + expected["catalog_db"],
        warehouse=expected["warehouse"],
    )
    db = expected["database"]
    tables = {name: catalog.load_table(f"{db}.{name}") for name in (
        "health_data_raw", "health_data_errors", "health_data_daily_agg",
        "health_data_weekly_agg", "health_data_monthly_agg")}
    data = {name: t.scan().to_arrow() for name, t in tables.items()}
    raw, errors = data["health_data_raw"], data["health_data_errors"]

    check(raw.num_rows == expected["raw_rows"], f"raw rows {raw.num_rows} == {expected['raw_rows']}")
    check(errors.num_rows == expected["error_rows"], f"error rows {errors.num_rows} == {expected['error_rows']}")

    seen = set(zip(raw["kafka_partition"].to_pylist(), raw["kafka_offset"].to_pylist()))
    seen |= set(zip(errors["kafka_partition"].to_pylist(), errors["kafka_offset"].to_pylist()))
    want = {(int(p), o) for p, n in expected["records_per_partition"].items() for o in range(n)}
    check(seen == want, f"every input offset in raw or errors ({len(seen)} of {len(want)}, none extra)")
    samples = Counter(zip(raw["kafka_partition"].to_pylist(), raw["kafka_offset"].to_pylist(), raw["sample_id"].to_pylist()))
    check(max(samples.values()) == 1, "no raw sample written twice")

    summary = tables["health_data_raw"].current_snapshot().summary
    offsets = json.loads(summary["healthlake.kafka-offsets"])
    want_offsets = {f"health-data-raw-{p}": n - 1 for p, n in expected["records_per_partition"].items()}
    check(all(offsets.get(k, -1) <= v for k, v in want_offsets.items()) and len(offsets) == len(want_offsets),
          f"raw snapshot summary carries the offset map {offsets}")
    check(tables["health_data_raw"].metadata.format_version == 2, "format version 2")
    check(tables["health_data_raw"].properties.get("write.parquet.compression-codec") == "snappy", "raw table properties")
    spec = [f.name for f in tables["health_data_raw"].spec().fields]
    check(spec == ["start_date_day", "data_type"], f"raw partition spec {spec}")

    keys = {
        "health_data_daily_agg": ("aggregation_date",),
        "health_data_weekly_agg": ("year", "week_of_year"),
        "health_data_monthly_agg": ("year", "month"),
    }
    for name, period in keys.items():
        table = data[name]
        check(table.num_rows > 0, f"{name} has closed windows ({table.num_rows})")
        ids = tables[name].schema().identifier_field_names()
        check(set(ids) == {"user_id", "data_type", *period}, f"{name} identifier fields {sorted(ids)}")
        pk = Counter(zip(*(table[c].to_pylist() for c in ("user_id", "data_type", *period))))
        check(max(pk.values()) == 1, f"{name}: no primary key twice")
        if aggregates_overwritten:
            snapshot = tables[name].current_snapshot()
            summary = snapshot.summary
            check(summary.operation.value == "overwrite" and int(summary["deleted-records"] or 0) > 0
                  and int(summary["total-records"] or -1) == table.num_rows,
                  f"{name}: newest snapshot is an overwrite (added {summary['added-records']}, deleted "
                  f"{summary['deleted-records']}, total {summary['total-records']} = rows read)")
            before = tables[name].scan(snapshot_id=snapshot.parent_snapshot_id).to_arrow()
            check(before.num_rows == table.num_rows,
                  f"{name}: time travel to the snapshot before holds the same {before.num_rows} windows")
        # Recompute the row with the most measurements from raw.
        i = pc.index(table["count"], pc.max(table["count"])).as_py()
        row = {c: table[c][i].as_py() for c in table.column_names}
        mask = pc.and_(
            pc.and_(pc.equal(raw["user_id"], row["user_id"]), pc.equal(raw["data_type"], row["data_type"])),
            pc.and_(pc.greater_equal(raw["start_date"], row["window_start"]), pc.less(raw["start_date"], row["window_end"])),
        )
        values = raw.filter(mask)["value"].to_pylist()
        n = len(values)
        mean = sum(values) / n if n else float("nan")
        stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / n) if n else float("nan")
        close = lambda a, b: abs(a - b) <= 1e-6 * (1 + abs(a) + abs(b))
        check(row["count"] == n and close(row["sum_value"], sum(values)) and close(row["avg_value"], mean)
              and close(row["min_value"], min(values)) and close(row["max_value"], max(values))
              and close(row["stddev_value"], stddev),
              f"{name} {row['user_id']}/{row['data_type']} {[row[c] for c in period]}: count {row['count']} "
              f"avg {row['avg_value']:.3f} stddev {row['stddev_value']:.3f} equals raw recomputation ({n} values)")

    print(f"{len(failures)} failed" if failures else "all table checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--aggregates-overwritten" in sys.argv[2:]))
