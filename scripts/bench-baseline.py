"""healthlake against a straightforward Python ingest, on the same generated events, in one run.

`healthlake events` writes Kafka events (as the Lambda event source mapping delivers them) and the
writer schemas they reference; `healthlake invoke ingest` ingests them on the embedded stores, and
this script ingests the same files with what one would write in Python in an afternoon: fastavro
(writer schema from the file registry, resolved to the contract's reader schema), validation with
pyarrow compute (the rules of lib/core/src/validate.rs, default settings), one pyiceberg append per
table per event with the Kafka offsets in the snapshot summary (records already committed are
skipped), and partial aggregates (count, mean, M2, min, max, sum, first/last) per (user, data
type, day / ISO week / month) merged into SQLite in one transaction per event. Both wall times
include creating the tables and the state store; healthlake's also includes its process start,
the Python one excludes interpreter start and imports. By hand, not CI:

  source scripts/env.sh
  "$HEALTHLAKE_PYTHON" -m pip install fastavro "pyiceberg[pyiceberg-core]==0.12.0"   # once, this bench only
  "$HEALTHLAKE_PYTHON" scripts/bench-baseline.py [--records 9000] [--batch-size 170] [--keep]
"""

import argparse
import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform, IdentityTransform
    from pyiceberg.types import (BooleanType, DateType, DoubleType, IntegerType, LongType, MapType, NestedField,
                                 StringType, TimestampType)
except ImportError as e:
    sys.exit(f"{e}: run with $HEALTHLAKE_PYTHON (source scripts/env.sh; bash scripts/install-python-deps.sh)")
try:
    import fastavro
    import pyiceberg_core  # noqa: F401  pyiceberg's day() partition transform on write
except ImportError as e:
    sys.exit(f"{e}: this bench alone needs fastavro and pyiceberg-core; install them into the venv with:\n"
             '  source scripts/env.sh\n'
             '  "$HEALTHLAKE_PYTHON" -m pip install fastavro "pyiceberg[pyiceberg-core]==0.12.0"')

ROOT = Path(__file__).resolve().parent.parent
READER_SCHEMA = ROOT / "lib/core/contract/health_data_payload.v1.avsc"
CATALOG, NAMESPACE = "health_catalog", "health_db"
OFFSETS_PROPERTY = "healthlake.kafka-offsets"  # lib/lake/src/commit.rs: {"topic-partition": last offset}

# lib/core/src/validate.rs, default settings.
MIN_HEART_RATE, MAX_HEART_RATE, MAX_STEPS_PER_DAY = 30.0, 250.0, 100_000.0
HEART_RATE_TYPES = ["heartRate", "restingHeartRate", "walkingHeartRateAverage"]
STEP_TYPES = ["steps", "stepCount"]
SANITY_LIMIT = 1e9
MAX_FUTURE_SKEW = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_OUT_OF_ORDERNESS = timedelta(minutes=10)  # WATERMARK_MAX_OUT_OF_ORDERNESS

# lib/lake/src/tables.rs
COMMON_PROPERTIES = {
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "snappy",
    "history.expire.min-snapshots-to-keep": "10",
    "write.metadata.previous-versions-max": "100",
    "write.metadata.delete-after-commit.enabled": "true",
    "commit.manifest.target-size-bytes": "8388608",
}
RAW_PROPERTIES = {
    **COMMON_PROPERTIES,
    "write.parquet.page-size-bytes": "1048576",
    "write.parquet.row-group-size-bytes": "134217728",
    "write.metadata.compression-codec": "gzip",
    "write.target-file-size-bytes": "134217728",
    "commit.retry.num-retries": "3",
    "commit.retry.min-wait-ms": "100",
    "history.expire.max-snapshot-age-ms": "2592000000",
}
ERRORS_PROPERTIES = {
    **COMMON_PROPERTIES,
    "write.target-file-size-bytes": "67108864",
    "history.expire.max-snapshot-age-ms": "2592000000",
}


def field(i, name, t, required=True, doc=None):
    return NestedField(i, name, t, required=required, doc=doc)


RAW_SCHEMA = Schema(
    field(1, "device_id", StringType(), doc="Unique device identifier"),
    field(2, "user_id", StringType(), doc="Unique user identifier"),
    field(3, "sample_id", StringType(), doc="Unique sample identifier"),
    field(4, "data_type", StringType(), doc="Type of health data (heartRate, steps, etc.)"),
    field(5, "value", DoubleType(), doc="Measured value"),
    field(6, "unit", StringType(), doc="Unit of measurement"),
    field(7, "start_date", TimestampType(), doc="Sample start timestamp (event time)"),
    field(8, "end_date", TimestampType(), doc="Sample end timestamp"),
    field(9, "created_at", TimestampType(), doc="Sample creation timestamp"),
    field(10, "payload_timestamp", TimestampType(), doc="Payload received timestamp"),
    field(11, "processing_time", TimestampType(), doc="Processing timestamp"),
    field(12, "source_bundle", StringType(), False, "Source application bundle ID"),
    field(13, "metadata", MapType(17, StringType(), 18, StringType(), value_required=False), False,
          "Additional metadata key-value pairs"),
    field(14, "is_synced", BooleanType(), doc="Sync status flag"),
    field(15, "app_version", StringType(), doc="Application version"),
    field(16, "ingestion_date", DateType(), doc="Date partition (derived from start_date)"),
    field(19, "kafka_topic", StringType(), doc="Kafka topic of the source record"),
    field(20, "kafka_partition", IntegerType(), doc="Kafka partition of the source record"),
    field(21, "kafka_offset", LongType(), doc="Kafka offset of the source record"),
)
RAW_SPEC = PartitionSpec(PartitionField(7, 1000, DayTransform(), "start_date_day"),
                         PartitionField(4, 1001, IdentityTransform(), "data_type"))
ERRORS_SCHEMA = Schema(
    field(1, "raw_payload", StringType(), doc="Original raw payload (base64 when binary)"),
    field(2, "error_type", StringType(), doc="Type of error (validation, deserialization, etc.)"),
    field(3, "error_message", StringType(), doc="Error message"),
    field(4, "error_timestamp", TimestampType(), doc="When the error occurred"),
    field(5, "user_id", StringType(), False, "User ID if available"),
    field(6, "data_type", StringType(), False, "Data type if available"),
    field(7, "sample_id", StringType(), False, "Sample ID if available"),
    field(8, "processing_time", TimestampType(), doc="Processing timestamp"),
    field(9, "kafka_offset", LongType(), False, "Kafka offset of the failed message"),
    field(10, "kafka_partition", IntegerType(), False, "Kafka partition"),
    field(11, "kafka_topic", StringType(), False, "Kafka topic"),
    field(12, "error_date", DateType(), doc="Date partition"),
)
ERRORS_SPEC = PartitionSpec(PartitionField(4, 1000, DayTransform(), "error_timestamp_day"),
                            PartitionField(2, 1001, IdentityTransform(), "error_type"))

TS = pa.timestamp("us")
TS_UTC = pa.timestamp("us", tz="UTC")
RAW_ARROW = pa.schema([
    pa.field("device_id", pa.string(), False), pa.field("user_id", pa.string(), False),
    pa.field("sample_id", pa.string(), False), pa.field("data_type", pa.string(), False),
    pa.field("value", pa.float64(), False), pa.field("unit", pa.string(), False),
    pa.field("start_date", TS, False), pa.field("end_date", TS, False), pa.field("created_at", TS, False),
    pa.field("payload_timestamp", TS, False), pa.field("processing_time", TS, False),
    pa.field("source_bundle", pa.string()), pa.field("metadata", pa.map_(pa.string(), pa.string())),
    pa.field("is_synced", pa.bool_(), False), pa.field("app_version", pa.string(), False),
    pa.field("ingestion_date", pa.date32(), False), pa.field("kafka_topic", pa.string(), False),
    pa.field("kafka_partition", pa.int32(), False), pa.field("kafka_offset", pa.int64(), False),
])
ERRORS_ARROW = pa.schema([
    pa.field("raw_payload", pa.string(), False), pa.field("error_type", pa.string(), False),
    pa.field("error_message", pa.string(), False), pa.field("error_timestamp", TS, False),
    pa.field("user_id", pa.string()), pa.field("data_type", pa.string()), pa.field("sample_id", pa.string()),
    pa.field("processing_time", TS, False), pa.field("kafka_offset", pa.int64()),
    pa.field("kafka_partition", pa.int32()), pa.field("kafka_topic", pa.string()),
    pa.field("error_date", pa.date32(), False),
])

STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS partials (
    user_id TEXT NOT NULL, data_type TEXT NOT NULL, window_kind TEXT NOT NULL, window_start TEXT NOT NULL,
    count INTEGER NOT NULL, mean REAL NOT NULL, m2 REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
    sum REAL NOT NULL, first_ts INTEGER NOT NULL, first_value REAL NOT NULL,
    last_ts INTEGER NOT NULL, last_value REAL NOT NULL,
    PRIMARY KEY (user_id, data_type, window_kind, window_start));
CREATE TABLE IF NOT EXISTS partition_progress (partition_key TEXT PRIMARY KEY, max_event_micros INTEGER NOT NULL);
"""
# Chan et al.'s merge of a batch's pre-combined partial into the stored one (SET expressions read the
# row as it was before the update).
UPSERT_PARTIAL = """
INSERT INTO partials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id, data_type, window_kind, window_start) DO UPDATE SET
    mean = mean + (excluded.mean - mean) * excluded.count / (count + excluded.count),
    m2 = m2 + excluded.m2 + (excluded.mean - mean) * (excluded.mean - mean) * count * excluded.count
         / (count + excluded.count),
    count = count + excluded.count,
    min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum,
    first_value = CASE WHEN excluded.first_ts < first_ts THEN excluded.first_value ELSE first_value END,
    first_ts = min(first_ts, excluded.first_ts),
    last_value = CASE WHEN excluded.last_ts > last_ts THEN excluded.last_value ELSE last_value END,
    last_ts = max(last_ts, excluded.last_ts)
"""
UPSERT_PROGRESS = """
INSERT INTO partition_progress VALUES (?, ?)
ON CONFLICT (partition_key) DO UPDATE SET max_event_micros = max(max_event_micros, excluded.max_event_micros)
"""

ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$"
ZONED = r"(Z|[+-]\d{2}:\d{2})$"


def parse_instants(texts):
    """ISO 8601 instants as timestamp[us, UTC], null where missing or unparseable; a time without
    offset is UTC (lib/core/src/time.rs)."""
    s = pc.utf8_trim_whitespace(texts)
    shaped = pc.match_substring_regex(s, ISO_INSTANT)
    s = pc.if_else(pc.match_substring_regex(s, ZONED), s, pc.binary_join_element_wise(s, "+00:00", ""))
    s = pc.if_else(shaped, s, pa.scalar(None, pa.string()))
    try:
        parsed = s.cast(pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a date Arrow refuses (month 13, year 3000)
        parsed = pa.array([parse_one(t) for t in s.to_pylist()], type=pa.timestamp("us", tz="UTC"))
    return parsed.cast(TS_UTC, safe=False)


def parse_one(text):
    try:
        return datetime.fromisoformat(text.replace(" ", "T")) if text else None
    except ValueError:
        return None


def to_us(ts):
    return pc.cast(ts, TS)


class Baseline:
    """The Python ingest: catalog, two tables, state store, writer schemas."""

    def __init__(self, work, schemas_dir):
        work.mkdir(parents=True)
        self.catalog = SqlCatalog(CATALOG, uri=f"sqlite:///{work}/catalog.db", warehouse=f"file://{work}/warehouse")
        self.catalog.create_namespace_if_not_exists(NAMESPACE)
        self.raw = self.catalog.create_table_if_not_exists(f"{NAMESPACE}.health_data_raw", RAW_SCHEMA,
                                                           partition_spec=RAW_SPEC, properties=RAW_PROPERTIES)
        self.errors = self.catalog.create_table_if_not_exists(f"{NAMESPACE}.health_data_errors", ERRORS_SCHEMA,
                                                              partition_spec=ERRORS_SPEC,
                                                              properties=ERRORS_PROPERTIES)
        self.state = sqlite3.connect(work / "state.sqlite")
        self.state.execute("PRAGMA journal_mode=WAL")
        self.state.executescript(STATE_SCHEMA)
        self.reader = fastavro.parse_schema(json.loads(READER_SCHEMA.read_text()))
        self.schemas_dir = schemas_dir
        self.writers = {}  # schema id -> parsed writer schema, or None when the registry lacks it
        self.samples = 0

    def writer(self, schema_id):
        if schema_id not in self.writers:
            path = self.schemas_dir / f"{schema_id}.avsc"
            self.writers[schema_id] = fastavro.parse_schema(json.loads(path.read_text())) if path.exists() else None
        return self.writers[schema_id]

    def decode(self, value):
        """A Kafka value as a payload dict, or raises (error_type, message)."""
        if len(value) >= 5 and value[0] == 0:
            schema_id = int.from_bytes(value[1:5], "big")
            writer = self.writer(schema_id)
            if writer is None:
                raise DecodeError("unknown_schema", f"schema id {schema_id} is unknown to the schema registry")
            body = io.BytesIO(value[5:])
            try:
                payload = fastavro.schemaless_reader(body, writer, self.reader)
            except Exception as e:
                raise DecodeError("deserialization", f"Avro body (schema id {schema_id}): {e!r}")
            if body.tell() != len(value) - 5:
                raise DecodeError("deserialization", f"{len(value) - 5 - body.tell()} trailing bytes after the record")
            return payload
        if value.lstrip()[:1] == b"{":
            try:
                return json.loads(value)
            except ValueError as e:
                raise DecodeError("deserialization", f"JSON payload: {e}")
        raise DecodeError("deserialization", "neither Confluent-framed Avro nor JSON")

    def ingest(self, event_path):
        now = datetime.now(timezone.utc)
        event = json.loads(event_path.read_text())
        records = {}
        for group, rs in event["records"].items():
            for r in rs:
                topic = r.get("topic") or group.rsplit("-", 1)[0]
                records.setdefault((topic, int(r["partition"]), int(r["offset"])), r)
        raw_committed = committed(self.raw)
        errors_committed = committed(self.errors)

        def above(committed_map, topic, partition, offset):
            return offset > committed_map.get(f"{topic}-{partition}", -1)

        cols = {k: [] for k in ("device_id", "user_id", "app_version", "payload_timestamp", "sample_id", "data_type",
                                "value", "unit", "start", "end", "created", "source_bundle", "metadata", "is_synced",
                                "topic", "partition", "offset", "record_ms", "payload", "index")}
        errors = []  # error rows of records that did not decode or had no samples, as dicts
        payloads = []
        consumed = []
        for (topic, partition, offset), r in sorted(records.items()):
            if not above(raw_committed, topic, partition, offset) and not above(errors_committed, topic, partition,
                                                                                 offset):
                continue
            consumed.append((topic, partition, offset))
            encoded = r.get("value") or ""
            record_ms = int(r["timestamp"])
            try:
                value = base64.b64decode(encoded, validate=True)
            except ValueError as e:
                errors.append(error_row(encoded, "deserialization", f"value is not base64: {e}", None, None, None,
                                        topic, partition, offset))
                continue
            try:
                payload = self.decode(value)
            except DecodeError as e:
                try:  # the value as text when it is, else as the event carried it (base64)
                    text = value.decode()
                except UnicodeDecodeError:
                    text = encoded
                errors.append(error_row(text, *e.args, None, None, None, topic, partition, offset))
                continue
            samples = payload.get("samples") or []
            if not samples:
                errors.append(error_row(json.dumps(context(payload, None)), "empty_payload", "payload has no samples",
                                        payload.get("userId"), None, None, topic, partition, offset))
                continue
            p = len(payloads)
            payloads.append(payload)
            for i, s in enumerate(samples):
                cols["device_id"].append(payload.get("deviceId"))
                cols["user_id"].append(payload.get("userId"))
                cols["app_version"].append(payload.get("appVersion"))
                cols["payload_timestamp"].append(payload.get("timestamp"))
                cols["sample_id"].append(s.get("id"))
                cols["data_type"].append(s.get("type"))
                cols["value"].append(s.get("value"))
                cols["unit"].append(s.get("unit"))
                cols["start"].append(s.get("startDate"))
                cols["end"].append(s.get("endDate"))
                cols["created"].append(s.get("createdAt"))
                cols["source_bundle"].append(s.get("sourceBundle"))
                m = s.get("metadata")
                cols["metadata"].append(list(m.items()) if m is not None else None)
                cols["is_synced"].append(bool(s.get("isSynced")))
                cols["topic"].append(topic)
                cols["partition"].append(partition)
                cols["offset"].append(offset)
                cols["record_ms"].append(record_ms)
                cols["payload"].append(p)
                cols["index"].append(i)
        self.samples += len(cols["value"])

        # Validate, column by column.
        text = {k: pa.array(cols[k], pa.string()) for k in ("device_id", "user_id", "app_version", "sample_id",
                                                            "data_type", "unit", "source_bundle")}
        value = pa.array(cols["value"], pa.float64())
        stamps = {k: pa.array(cols[k], pa.string()) for k in ("payload_timestamp", "start", "end", "created")}
        parsed = {k: parse_instants(v) for k, v in stamps.items()}
        record_time = pc.cast(pa.array(cols["record_ms"], pa.int64()).cast(pa.timestamp("ms", tz="UTC")), TS_UTC)
        latest = pc.add(record_time, pa.scalar(MAX_FUTURE_SKEW, pa.duration("us")))
        start, end = parsed["start"], parsed["end"]
        dtype = text["data_type"]

        def missing(array):
            return pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(array)), 0), True)

        def true(condition):
            return pc.fill_null(condition, False)

        checks = [  # in the order validate.rs applies them: the first that fails names the error
            *[(missing(text[k]), "missing_field", name) for k, name in
              [("user_id", "userId"), ("device_id", "deviceId"), ("app_version", "appVersion"),
               ("sample_id", "samples[].id"), ("data_type", "samples[].type"), ("unit", "samples[].unit")]],
            (pc.is_null(value), "missing_field", "samples[].value"),
            *[c for k, name in [("payload_timestamp", "timestamp"), ("start", "samples[].startDate"),
                                ("end", "samples[].endDate"), ("created", "samples[].createdAt")]
              for c in [(missing(stamps[k]), "missing_field", name),
                        (pc.is_null(parsed[k]), "invalid_timestamp", name)]],
            (pc.invert(true(pc.is_finite(value))), "out_of_range", "not finite"),
            (true(pc.greater(pc.abs(value), SANITY_LIMIT)), "out_of_range", "sanity"),
            (true(pc.less(value, 0.0)), "negative_value", None),
            (true(pc.and_(pc.is_in(dtype, pa.array(HEART_RATE_TYPES)),
                          pc.or_(pc.less(value, MIN_HEART_RATE), pc.greater(value, MAX_HEART_RATE)))),
             "out_of_range", "heart rate"),
            (true(pc.and_(pc.is_in(dtype, pa.array(STEP_TYPES)), pc.greater(value, MAX_STEPS_PER_DAY))),
             "out_of_range", "steps"),
            (true(pc.less(end, start)), "end_before_start", None),
            (true(pc.less(start, pa.scalar(EARLIEST, TS_UTC))), "invalid_timestamp", "earliest"),
            (true(pc.or_(pc.greater(start, latest), pc.greater(end, latest))), "future_timestamp", None),
        ]
        invalid = checks[0][0]
        for condition, _, _ in checks[1:]:
            invalid = pc.or_(invalid, condition)
        valid = pc.invert(invalid)

        topic_a = pa.array(cols["topic"], pa.string())
        partition_a = pa.array(cols["partition"], pa.int32())
        offset_a = pa.array(cols["offset"], pa.int64())
        raw_above = pa.array([above(raw_committed, t, p, o) for t, p, o in
                              zip(cols["topic"], cols["partition"], cols["offset"])], pa.bool_())
        keep = pc.and_(valid, raw_above)

        # Error rows of invalid samples: few, so built one by one with their messages.
        if pc.any(invalid).as_py():
            rows = pc.indices_nonzero(invalid)
            flags = [c.take(rows).to_pylist() for c, _, _ in checks]
            for k, row in enumerate(rows.to_pylist()):
                _, error_type, what = next(c for c, f in zip(checks, flags) if f[k])
                payload = payloads[cols["payload"][row]]
                sample = payload["samples"][cols["index"][row]]
                errors.append(error_row(json.dumps(context(payload, sample)), error_type,
                                        message(error_type, what, payload, sample, cols["record_ms"][row]),
                                        payload.get("userId"), sample.get("type"), sample.get("id"),
                                        cols["topic"][row], cols["partition"][row], cols["offset"][row]))

        # Merge partial aggregates (daily, weekly, monthly) and watermarks in one transaction.
        good = pa.table({"user_id": text["user_id"], "data_type": dtype, "ts": start, "value": value,
                         "partition_key": pc.binary_join_element_wise(topic_a, partition_a.cast(pa.string()), "-"),
                         "bound": pc.min_element_wise(start.cast(pa.int64()), pc.add(record_time, pa.scalar(
                             MAX_OUT_OF_ORDERNESS, pa.duration("us"))).cast(pa.int64()))}).filter(valid)
        progress = good.group_by("partition_key").aggregate([("bound", "max")])
        fresh = good.filter(raw_above.filter(valid)).sort_by("ts")
        windows = {"daily": fresh["ts"].cast(pa.date32()),
                   "weekly": pc.floor_temporal(fresh["ts"], 1, "week", week_starts_monday=True).cast(pa.date32()),
                   "monthly": pc.floor_temporal(fresh["ts"], 1, "month").cast(pa.date32())}
        rows = []
        for kind, window_start in windows.items():
            t = fresh.select(["user_id", "data_type", "ts", "value"]).append_column("window_start",
                                                                                    window_start.cast(pa.string()))
            g = t.group_by(["user_id", "data_type", "window_start"], use_threads=False).aggregate([
                ("value", "count"), ("value", "mean"), ("value", "variance", pc.VarianceOptions(ddof=0)),
                ("value", "min"), ("value", "max"), ("value", "sum"), ("ts", "min"), ("value", "first"),
                ("ts", "max"), ("value", "last")])
            m2 = pc.multiply(g["value_variance"], g["value_count"].cast(pa.float64()))
            rows.extend(zip(g["user_id"].to_pylist(), g["data_type"].to_pylist(), [kind] * g.num_rows,
                            g["window_start"].to_pylist(), g["value_count"].to_pylist(), g["value_mean"].to_pylist(),
                            m2.to_pylist(), g["value_min"].to_pylist(), g["value_max"].to_pylist(),
                            g["value_sum"].to_pylist(), g["ts_min"].cast(pa.int64()).to_pylist(),
                            g["value_first"].to_pylist(), g["ts_max"].cast(pa.int64()).to_pylist(),
                            g["value_last"].to_pylist()))
        with self.state:
            self.state.executemany(UPSERT_PARTIAL, rows)
            self.state.executemany(UPSERT_PROGRESS, zip(progress["partition_key"].to_pylist(),
                                                        progress["bound_max"].to_pylist()))

        # One append per table, carrying the offset map forward.
        processing = now.replace(tzinfo=None)
        if pc.any(keep).as_py():
            n = pc.sum(keep).as_py()
            start_kept = to_us(start.filter(keep))
            raw = pa.Table.from_arrays([
                text["device_id"].filter(keep), text["user_id"].filter(keep), text["sample_id"].filter(keep),
                dtype.filter(keep), value.filter(keep), text["unit"].filter(keep), start_kept,
                to_us(end.filter(keep)), to_us(parsed["created"].filter(keep)),
                to_us(parsed["payload_timestamp"].filter(keep)), pa.array([processing] * n, TS),
                text["source_bundle"].filter(keep),
                pa.array(cols["metadata"], pa.map_(pa.string(), pa.string())).filter(keep),
                pa.array(cols["is_synced"], pa.bool_()).filter(keep), text["app_version"].filter(keep),
                start_kept.cast(pa.date32()), topic_a.filter(keep), partition_a.filter(keep), offset_a.filter(keep),
            ], schema=RAW_ARROW)
            self.raw.append(raw, snapshot_properties=offsets_after(raw_committed, consumed))
        errors = [e for e in errors if above(errors_committed, e["kafka_topic"], e["kafka_partition"],
                                             e["kafka_offset"])]
        if errors:
            for e in errors:
                e["error_timestamp"] = e["processing_time"] = now.replace(tzinfo=None)
                e["error_date"] = now.date()
            self.errors.append(pa.Table.from_pylist(errors, schema=ERRORS_ARROW),
                               snapshot_properties=offsets_after(errors_committed, consumed))


class DecodeError(Exception):
    pass


def committed(table):
    """The offset map of the current snapshot (healthlake walks the ancestry for it: other engines'
    snapshots carry none; here only this script commits)."""
    snapshot = table.current_snapshot()
    text = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY) if snapshot else None
    return json.loads(text) if text else {}


def offsets_after(committed_map, consumed):
    offsets = dict(committed_map)
    for topic, partition, offset in consumed:
        key = f"{topic}-{partition}"
        offsets[key] = max(offsets.get(key, -1), offset)
    return {OFFSETS_PROPERTY: json.dumps(offsets, sort_keys=True, separators=(",", ":"))}


def context(payload, sample):
    return {k: payload.get(k) for k in ("payloadId", "deviceId", "userId", "timestamp", "appVersion")} | {
        "samples": [sample] if sample is not None else []}


def message(error_type, what, payload, sample, record_ms):
    v, t = sample.get("value"), sample.get("type")
    start, end = sample.get("startDate"), sample.get("endDate")
    if error_type == "missing_field":
        return f"required field `{what}` is missing or empty"
    if error_type == "invalid_timestamp":
        if what == "earliest":
            return f"startDate {start} is before {EARLIEST}"
        text = payload.get("timestamp") if what == "timestamp" else sample.get(what.removeprefix("samples[]."))
        return f"`{what}` = {text!r} is not an ISO 8601 instant"
    if error_type == "negative_value":
        return f"value {v} is negative"
    if error_type == "end_before_start":
        return f"endDate {end} is before startDate {start}"
    if error_type == "future_timestamp":
        record_time = datetime.fromtimestamp(record_ms / 1000, timezone.utc)
        return f"sample time {start}..{end} is more than 24 h ahead of the Kafka record time {record_time}"
    return {"not finite": f"value {v} is not a finite number",
            "sanity": f"{t} {v:e} beyond the sanity limit ±{SANITY_LIMIT:e}",
            "heart rate": f"{t} {v} outside [{MIN_HEART_RATE}, {MAX_HEART_RATE}] bpm",
            "steps": f"{t} {v} above MAX_STEPS_PER_DAY {MAX_STEPS_PER_DAY}"}[what]


def error_row(raw_payload, error_type, message_text, user_id, data_type, sample_id, topic, partition, offset):
    return {"raw_payload": raw_payload, "error_type": error_type, "error_message": message_text,
            "user_id": user_id, "data_type": data_type, "sample_id": sample_id, "kafka_offset": offset,
            "kafka_partition": partition, "kafka_topic": topic}


def default_binary():
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/healthlake/target"))
    release = target / "release/healthlake"
    if release.exists():
        return release
    for fallback in (target / "debug/healthlake", shutil.which("healthlake")):
        if fallback and Path(fallback).exists():
            print(f"note: no release build at {release}; using {fallback} (a debug build is no fair "
                  "comparison: cargo build --release -p healthlake --bin healthlake)", file=sys.stderr)
            return Path(fallback)
    sys.exit(f"no healthlake binary at {release}: cargo build --release -p healthlake --bin healthlake, "
             "or pass --healthlake PATH")


def table_figures(catalog_db, warehouse):
    """Raw rows, error rows by type, of a catalog."""
    catalog = SqlCatalog(CATALOG, uri=f"sqlite:///{catalog_db}", warehouse=f"file://{warehouse}")
    raw = catalog.load_table(f"{NAMESPACE}.health_data_raw").scan(selected_fields=("kafka_offset",)).to_arrow()
    errors = catalog.load_table(f"{NAMESPACE}.health_data_errors").scan(selected_fields=("error_type",)).to_arrow()
    by_type = {r["error_type"]: r["count_all"] for r in errors.group_by("error_type").aggregate(
        [([], "count_all")]).to_pylist()}
    return raw.num_rows, errors.num_rows, by_type


def windows_healthlake(state_dir):
    with sqlite3.connect(state_dir / "accumulators.sqlite") as db:
        return {k.lower(): n for k, n in db.execute(
            "SELECT window_kind, COUNT(*) FROM accumulators GROUP BY window_kind")}


def windows_python(state_db):
    with sqlite3.connect(state_db) as db:
        return dict(db.execute("SELECT window_kind, COUNT(*) FROM partials GROUP BY window_kind"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=9000, help="Kafka records to generate (1-8 samples each)")
    parser.add_argument("--batch-size", type=int, default=170, help="records per event (event source mapping)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--days", type=int, default=11, help="days of event time the data spans")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--healthlake", type=Path, help="the binary (default: the release build)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and print its path")
    args = parser.parse_args()
    healthlake = args.healthlake or default_binary()
    if not os.access(healthlake, os.X_OK):
        sys.exit(f"--healthlake {healthlake}: no such executable")
    # pyiceberg writes Parquet with pyarrow, which has no row-group size in bytes: healthlake's
    # `write.parquet.row-group-size-bytes` is kept on the table and not applied here.
    warnings.filterwarnings("ignore", message=r"Parquet writer option\(s\)")

    work = Path(tempfile.mkdtemp(prefix="healthlake-bench-baseline-"))
    try:
        events = work / "events"
        subprocess.run([healthlake, "events", "--out", events, "--records", str(args.records), "--batch-size",
                        str(args.batch_size), "--partitions", str(args.partitions), "--days", str(args.days),
                        "--seed", str(args.seed)], check=True, stdout=subprocess.DEVNULL)
        files = sorted(events.glob("*.json"))
        records = sum(len(rs) for f in files for rs in json.loads(f.read_text())["records"].values())

        hl = work / "healthlake"
        hl.mkdir()
        env = os.environ | {
            "ICEBERG_CATALOG_URI": f"sqlite://{hl}/catalog.db", "ICEBERG_WAREHOUSE": f"file://{hl}/warehouse",
            "HEALTHLAKE_STATE_DIR": str(hl / "state"), "SCHEMA_REGISTRY_URL": f"file://{events}/schemas",
            "LOG_LEVEL": "WARNING"}
        for name in ("ICEBERG_CATALOG_TYPE", "ICEBERG_CATALOG_NAME", "ICEBERG_DATABASE", "HEALTHLAKE_STATE_STORE"):
            env.pop(name, None)  # the embedded defaults, whatever the shell has
        print(f"{len(files)} events, {records} records ({args.partitions} partitions, {args.days} days, "
              f"seed {args.seed}); healthlake {healthlake}", flush=True)
        started = time.perf_counter()
        subprocess.run([healthlake, "invoke", "ingest", "--event", events], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        healthlake_s = time.perf_counter() - started

        py = work / "python"
        started = time.perf_counter()
        baseline = Baseline(py, events / "schemas")
        for f in files:
            baseline.ingest(f)
        baseline.state.close()
        python_s = time.perf_counter() - started

        samples = baseline.samples
        print(f"samples: {samples} (valid and invalid, in the records that decode)")
        print(f"healthlake invoke ingest: {healthlake_s:8.2f} s  {samples / healthlake_s:10,.0f} samples/s")
        print(f"Python baseline:          {python_s:8.2f} s  {samples / python_s:10,.0f} samples/s")
        ratio = python_s / healthlake_s
        print(f"healthlake is {ratio:.1f}× faster" if ratio >= 1 else f"healthlake is {1 / ratio:.1f}× slower")

        hl_raw, hl_errors, hl_types = table_figures(hl / "catalog.db", hl / "warehouse")
        py_raw, py_errors, py_types = table_figures(py / "catalog.db", py / "warehouse")
        hl_windows, py_windows = windows_healthlake(hl / "state"), windows_python(py / "state.sqlite")
        print(f"\n{'':24}{'healthlake':>12}{'python':>12}")
        differ = []
        lines = [("raw rows", hl_raw, py_raw), ("error rows", hl_errors, py_errors)]
        lines += [(f"  {t}", hl_types.get(t, 0), py_types.get(t, 0)) for t in sorted(set(hl_types) | set(py_types))]
        lines += [(f"{k} windows", hl_windows.get(k, 0), py_windows.get(k, 0)) for k in ("daily", "weekly", "monthly")]
        for label, a, b in lines:
            print(f"{label:<24}{a:>12}{b:>12}")
            if abs(a - b) > 0.02 * max(a, b, 1):
                differ.append(label.strip())
        if differ:
            print(f"\n!!! WARNING: the two runs differ by more than 2% in: {', '.join(differ)}. The Python side "
                  "does not do the same work: the comparison is not valid. !!!")
        if args.keep:
            print(f"\nkept {work} (events/, healthlake/, python/)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
