"""Independent check of table maintenance, through pyiceberg (Glue + S3 on the emulator, or the
SQL catalog).

  check_maintained.py record OUT.json --glue URL   every table's rows (a digest of every column
                                                   of every row) and what each snapshot reads
  check_maintained.py verify BEFORE.json --glue URL [--compacted raw,errors]
      after maintenance: the same rows in every table; every retained snapshot still scans (no
      file it references is missing) and reads what it read before; the tables named by
      --compacted hold fewer data files than before, and their newest compaction snapshot is a
      `replace` carrying the Kafka offset map.
"""

import hashlib
import json
import sys
from collections import Counter

from check_kafka_run import open_catalog

TABLES = ["health_data_raw", "health_data_errors", "health_data_daily_agg", "health_data_weekly_agg",
          "health_data_monthly_agg"]
failures = []


def check(ok, message):
    print(("ok   " if ok else "FAIL ") + message)
    if not ok:
        failures.append(message)


def row_digests(arrow_table):
    """A multiset of row digests over every column, independent of row and file order."""
    columns = sorted(arrow_table.column_names)
    data = {c: arrow_table.column(c).to_pylist() for c in columns}
    return Counter(
        hashlib.sha1(repr([data[c][i] for c in columns]).encode()).hexdigest() for i in range(arrow_table.num_rows)
    )


def live_data_files(table):
    return len(table.inspect.files())


def record(catalog):
    state = {}
    for name in TABLES:
        try:
            table = catalog.load_table(f"health_db.{name}")
        except Exception:  # noqa: BLE001 - a table finalize never created
            continue
        snapshots = {str(s.snapshot_id): table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows
                     for s in table.metadata.snapshots}
        state[name] = {"rows": row_digests(table.scan().to_arrow()), "snapshots": snapshots,
                       "data_files": live_data_files(table), "manifests": manifests(table)}
    return state


def manifests(table):
    snapshot = table.current_snapshot()
    return len(snapshot.manifests(table.io)) if snapshot else 0


def verify(catalog, before, compacted):
    for name, was in before.items():
        table = catalog.load_table(f"health_db.{name}")
        rows = row_digests(table.scan().to_arrow())
        check(rows == Counter(was["rows"]), f"{name}: the same {sum(rows.values())} rows, every column")
        retained = list(table.metadata.snapshots)
        unreadable, changed = [], []
        for s in retained:
            try:
                n = table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows
            except Exception as e:  # noqa: BLE001 - a missing file is what this looks for
                unreadable.append((s.snapshot_id, str(e)[:120]))
                continue
            if str(s.snapshot_id) in was["snapshots"] and was["snapshots"][str(s.snapshot_id)] != n:
                changed.append(s.snapshot_id)
        check(not unreadable, f"{name}: each of the {len(retained)} retained snapshots scans (time travel) "
              f"{unreadable[:2] if unreadable else ''}")
        check(not changed, f"{name}: each retained snapshot reads the rows it read before ({len(changed)} differ)")
        files, manifest_count = live_data_files(table), manifests(table)
        print(f"     {name}: data files {was['data_files']} -> {files}, manifests {was['manifests']} -> "
              f"{manifest_count}, snapshots {len(was['snapshots'])} -> {len(retained)}")
        if name.removeprefix("health_data_") in compacted:
            check(files < was["data_files"], f"{name}: fewer data files ({was['data_files']} -> {files})")
            check(manifest_count < was["manifests"], f"{name}: fewer manifests ({was['manifests']} -> {manifest_count})")
            replaces = [s for s in retained if s.summary and s.summary.get("healthlake.maintenance") == "compact"]
            check(bool(replaces), f"{name}: a compaction snapshot is retained")
            if replaces:
                summary = replaces[-1].summary
                check(summary.operation.value == "replace", f"{name}: compaction committed a replace snapshot")
                check("healthlake.kafka-offsets" in summary.additional_properties,
                      f"{name}: the compaction snapshot carries the Kafka offset map")


def main(argv):
    command, path, *rest = argv
    compacted = []
    if "--compacted" in rest:
        i = rest.index("--compacted")
        compacted = rest[i + 1].split(",")
        rest = rest[:i] + rest[i + 2:]
    catalog = open_catalog(rest)
    if command == "record":
        json.dump(record(catalog), open(path, "w"))
        print(f"recorded {path}")
        return 0
    verify(catalog, json.load(open(path)), compacted)
    print(f"{len(failures)} failed" if failures else "all maintenance checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
