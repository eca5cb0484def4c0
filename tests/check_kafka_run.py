"""Checks the tables a Kafka-fed run wrote against what the producer sent, reading them with an
independent reader (pyiceberg), and recomputing every window from the produced samples (not from
the raw table).

usage: check_kafka_run.py EXPECTATION_JSON --glue ENDPOINT
       check_kafka_run.py EXPECTATION_JSON --sql CATALOG_DB WAREHOUSE

EXPECTATION_JSON comes from `healthlake produce --expect-out`: for each record its partition,
offset, valid and invalid sample counts (or undecodable), and every valid sample.

Checks:
- raw + errors hold exactly the input: per (partition, offset), as many raw rows as valid samples
  and as many error rows as invalid samples (one for an undecodable record); no other offsets, no
  duplicates, so every partition's offsets are gap-free from its first produced offset;
- no error is a late record (the data is in order within WATERMARK_MAX_OUT_OF_ORDERNESS);
- every aggregate row equals the window recomputed from the produced samples (count, sum, avg,
  min, max, population stddev, first/last value, daily_avg_of_avg), and every recomputed window
  ending at or before the newest emitted window is in the table, once.
"""

import json
import math
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from pyiceberg.exceptions import NoSuchTableError

failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def close(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-9 * (1 + abs(a) + abs(b))


def open_catalog(args):
    if args[0] == "--glue":
        from pyiceberg.catalog.glue import GlueCatalog

        endpoint = args[1]
        return GlueCatalog("health_catalog", **{
            "glue.endpoint": endpoint, "glue.region": "us-east-1",
            "glue.access-key-id": "testing", "glue.secret-access-key": "testing",
            "s3.endpoint": endpoint, "s3.region": "us-east-1",
            "s3.access-key-id": "testing", "s3.secret-access-key": "testing",
        })
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("health_catalog", uri="sqlite:///" + args[1], warehouse=args[2])


def window_of(kind, start):
    day = start.date()
    if kind == "daily":
        first, end = day, day + timedelta(days=1)
        return (day,), first, end
    if kind == "weekly":
        first = day - timedelta(days=day.weekday())
        iso = first.isocalendar()
        return (iso[0], iso[1]), first, first + timedelta(days=7)
    first = day.replace(day=1)
    end = (first + timedelta(days=32)).replace(day=1)
    return (first.year, first.month), first, end


PERIOD = {"daily": ("aggregation_date",), "weekly": ("year", "week_of_year"), "monthly": ("year", "month")}


def recompute(samples, kind):
    windows = defaultdict(list)
    for user, data_type, start_ms, value in samples:
        start = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
        period, first, end = window_of(kind, start)
        windows[(user, data_type, *period)].append((start, value, end))
    out = {}
    for key, items in windows.items():
        values = [v for _, v, _ in items]
        n = len(values)
        mean = sum(values) / n
        by_time = sorted(items, key=lambda item: item[0])
        days = defaultdict(list)
        for start, value, _ in items:
            days[start.date()].append(value)
        out[key] = {
            "count": n,
            "sum_value": sum(values),
            "avg_value": mean,
            "min_value": min(values),
            "max_value": max(values),
            "stddev_value": math.sqrt(sum((v - mean) ** 2 for v in values) / n),
            # Only when the first/last sample is unambiguous in event time.
            "first_value": by_time[0][1] if n == 1 or by_time[0][0] < by_time[1][0] else None,
            "last_value": by_time[-1][1] if n == 1 or by_time[-1][0] > by_time[-2][0] else None,
            "daily_avg_of_avg": sum(sum(d) / len(d) for d in days.values()) / len(days),
            "end": items[0][2],
        }
    return out


def main(path, catalog_args):
    expected = json.load(open(path))
    catalog = open_catalog(catalog_args)
    table = lambda name: catalog.load_table(f"health_db.{name}")
    raw = table("health_data_raw").scan(selected_fields=("kafka_partition", "kafka_offset", "sample_id")).to_arrow()
    errors = table("health_data_errors").scan(
        selected_fields=("kafka_partition", "kafka_offset", "error_type")).to_arrow()

    want_raw, want_errors = Counter(), Counter()
    produced_offsets = defaultdict(list)
    for partition, offset, valid, invalid, undecodable in expected["records"]:
        produced_offsets[partition].append(offset)
        if valid:
            want_raw[(partition, offset)] = valid
        if undecodable or invalid:
            want_errors[(partition, offset)] = 1 if undecodable else invalid
    samples = sum(want_raw.values()) + sum(n for (p, o), n in want_errors.items())
    print(f"input: {len(expected['records'])} records over {len(produced_offsets)} partitions, "
          f"{len(expected['samples'])} valid samples, {sum(want_errors.values())} error rows expected")
    check(len(produced_offsets) >= 6, f"{len(produced_offsets)} partitions (≥ 6)")
    for partition, offsets in sorted(produced_offsets.items()):
        offsets.sort()
        check(offsets == list(range(offsets[0], offsets[0] + len(offsets))),
              f"partition {partition}: produced offsets {offsets[0]}..{offsets[-1]} are contiguous")

    got_raw = Counter(zip(raw["kafka_partition"].to_pylist(), raw["kafka_offset"].to_pylist()))
    got_errors = Counter(zip(errors["kafka_partition"].to_pylist(), errors["kafka_offset"].to_pylist()))
    check(raw.num_rows == sum(want_raw.values()), f"raw rows {raw.num_rows} == {sum(want_raw.values())} valid samples")
    check(errors.num_rows == sum(want_errors.values()),
          f"error rows {errors.num_rows} == {sum(want_errors.values())} (invalid samples + undecodable records)")
    check(got_raw == want_raw, f"raw rows per (partition, offset) equal the valid samples of each record "
          f"({sum(1 for k in got_raw.keys() | want_raw.keys() if got_raw[k] != want_raw[k])} offsets differ)")
    check(got_errors == want_errors, f"error rows per (partition, offset) equal the invalid samples of each record "
          f"({sum(1 for k in got_errors.keys() | want_errors.keys() if got_errors[k] != want_errors[k])} offsets differ)")
    sample_ids = Counter(zip(raw["kafka_partition"].to_pylist(), raw["kafka_offset"].to_pylist(),
                             raw["sample_id"].to_pylist()))
    check(max(sample_ids.values(), default=1) == 1, "no raw sample written twice")
    accounted = set(got_raw) | set(got_errors)
    for partition, offsets in sorted(produced_offsets.items()):
        mine = sorted(o for p, o in accounted if p == partition)
        check(mine == offsets, f"partition {partition}: offsets {mine[0] if mine else '-'}..{mine[-1] if mine else '-'} "
              f"in raw or errors, {len(mine)} of {len(offsets)}, no gap, none extra")
    late = Counter(errors["error_type"].to_pylist())["late_record"]
    check(late == 0, f"no late_record errors ({late})")

    for kind in ("daily", "weekly", "monthly"):
        want = recompute(expected["samples"], kind)
        try:
            rows = table(f"health_data_{kind}_agg").scan().to_arrow().to_pylist()
        except NoSuchTableError:
            check(False, f"{kind}: health_data_{kind}_agg exists (finalize never emitted a window)")
            continue
        keys = Counter((r["user_id"], r["data_type"], *(r[c] for c in PERIOD[kind])) for r in rows)
        check(rows and max(keys.values()) == 1, f"{kind}: {len(rows)} windows emitted, no primary key twice")
        newest = max(r["window_end"] for r in rows)
        newest_date = newest.date() if hasattr(newest, "date") else newest
        due = {k for k, w in want.items() if w["end"] <= newest_date}
        check(set(keys) == due, f"{kind}: the emitted windows are exactly the {len(due)} recomputed windows ending by "
              f"{newest_date} ({len(set(keys) - due)} extra, {len(due - set(keys))} missing)")
        wrong = []
        for r in rows:
            key = (r["user_id"], r["data_type"], *(r[c] for c in PERIOD[kind]))
            w = want.get(key)
            if w is None:
                continue
            fields = ["sum_value", "avg_value", "min_value", "max_value", "stddev_value"]
            fields += [f for f in ("first_value", "last_value") if f in r and w[f] is not None]
            if "daily_avg_of_avg" in r:
                fields.append("daily_avg_of_avg")
            bad = [f for f in fields if not close(r[f], w[f])]
            if r["count"] != w["count"] or bad:
                wrong.append((key, bad or ["count"]))
        check(not wrong, f"{kind}: every emitted window equals the recomputation from the produced samples "
              f"({len(wrong)} differ{', e.g. ' + repr(wrong[:2]) if wrong else ''})")

    print(f"{len(failures)} failed" if failures else "all Kafka run checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
