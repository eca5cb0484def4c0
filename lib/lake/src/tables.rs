//! The five tables of the spec: schemas, partition specs, properties, identifier fields.

use std::collections::HashMap;

use healthlake_core::WindowKind;
use iceberg::spec::{MapType, NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};

use crate::LakeError;

/// Which of the five tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    Raw,
    Errors,
    Aggregate(WindowKind),
}

impl TableKind {
    pub const ALL: [TableKind; 5] = [
        TableKind::Raw,
        TableKind::Errors,
        TableKind::Aggregate(WindowKind::Daily),
        TableKind::Aggregate(WindowKind::Weekly),
        TableKind::Aggregate(WindowKind::Monthly),
    ];

    /// The spec's default table name (overridable with `ICEBERG_TABLE_*`).
    pub fn default_name(self) -> &'static str {
        match self {
            TableKind::Raw => "health_data_raw",
            TableKind::Errors => "health_data_errors",
            TableKind::Aggregate(WindowKind::Daily) => "health_data_daily_agg",
            TableKind::Aggregate(WindowKind::Weekly) => "health_data_weekly_agg",
            TableKind::Aggregate(WindowKind::Monthly) => "health_data_monthly_agg",
        }
    }
}

/// Table names as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub raw: String,
    pub errors: String,
    pub daily: String,
    pub weekly: String,
    pub monthly: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            raw: TableKind::Raw.default_name().into(),
            errors: TableKind::Errors.default_name().into(),
            daily: TableKind::Aggregate(WindowKind::Daily).default_name().into(),
            weekly: TableKind::Aggregate(WindowKind::Weekly).default_name().into(),
            monthly: TableKind::Aggregate(WindowKind::Monthly).default_name().into(),
        }
    }
}

impl TableNames {
    pub fn name(&self, kind: TableKind) -> &str {
        match kind {
            TableKind::Raw => &self.raw,
            TableKind::Errors => &self.errors,
            TableKind::Aggregate(WindowKind::Daily) => &self.daily,
            TableKind::Aggregate(WindowKind::Weekly) => &self.weekly,
            TableKind::Aggregate(WindowKind::Monthly) => &self.monthly,
        }
    }
}

fn req(id: i32, name: &str, t: PrimitiveType, doc: &str) -> NestedField {
    NestedField::required(id, name, Type::Primitive(t)).with_doc(doc)
}

fn opt(id: i32, name: &str, t: PrimitiveType, doc: &str) -> NestedField {
    NestedField::optional(id, name, Type::Primitive(t)).with_doc(doc)
}

// Times are Iceberg `timestamp` (without zone) holding UTC: the spec's Flink `TIMESTAMP`, the type
// Athena's Iceberg tables use, and one the Glue catalog can describe (`timestamptz` has no Glue
// column type, and iceberg-catalog-glue refuses it).
use PrimitiveType::{Boolean, Date, Double, Int, Long, String as Str, Timestamp};

/// A partition field: source column id, partition field name, transform.
type PartitionField = (i32, &'static str, Transform);

/// The table definition: schema (with identifier fields), partition spec and properties.
pub struct TableDefinition {
    pub schema: Schema,
    pub partition_spec: UnboundPartitionSpec,
    pub properties: HashMap<String, String>,
}

pub fn definition(kind: TableKind) -> Result<TableDefinition, LakeError> {
    let (fields, identifier, partition): (Vec<NestedField>, Vec<i32>, Vec<PartitionField>) = match kind {
        TableKind::Raw => (
            vec![
                req(1, "device_id", Str, "Unique device identifier"),
                req(2, "user_id", Str, "Unique user identifier"),
                req(3, "sample_id", Str, "Unique sample identifier"),
                req(4, "data_type", Str, "Type of health data (heartRate, steps, etc.)"),
                req(5, "value", Double, "Measured value"),
                req(6, "unit", Str, "Unit of measurement"),
                req(7, "start_date", Timestamp, "Sample start timestamp (event time)"),
                req(8, "end_date", Timestamp, "Sample end timestamp"),
                req(9, "created_at", Timestamp, "Sample creation timestamp"),
                req(10, "payload_timestamp", Timestamp, "Payload received timestamp"),
                req(11, "processing_time", Timestamp, "Processing timestamp"),
                opt(12, "source_bundle", Str, "Source application bundle ID"),
                NestedField::optional(
                    13,
                    "metadata",
                    Type::Map(MapType::new(
                        NestedField::map_key_element(17, Type::Primitive(Str)).into(),
                        NestedField::map_value_element(18, Type::Primitive(Str), false).into(),
                    )),
                )
                .with_doc("Additional metadata key-value pairs"),
                req(14, "is_synced", Boolean, "Sync status flag"),
                req(15, "app_version", Str, "Application version"),
                req(16, "ingestion_date", Date, "Date partition (derived from start_date)"),
                // Lineage columns beyond the spec: they make every row traceable to its Kafka
                // record and let checks prove nothing was lost or duplicated.
                req(19, "kafka_topic", Str, "Kafka topic of the source record"),
                req(20, "kafka_partition", Int, "Kafka partition of the source record"),
                req(21, "kafka_offset", Long, "Kafka offset of the source record"),
            ],
            vec![],
            vec![(7, "start_date_day", Transform::Day), (4, "data_type", Transform::Identity)],
        ),
        TableKind::Errors => (
            vec![
                req(1, "raw_payload", Str, "Original raw payload (base64 when binary)"),
                req(2, "error_type", Str, "Type of error (validation, deserialization, etc.)"),
                req(3, "error_message", Str, "Error message"),
                req(4, "error_timestamp", Timestamp, "When the error occurred"),
                opt(5, "user_id", Str, "User ID if available"),
                opt(6, "data_type", Str, "Data type if available"),
                opt(7, "sample_id", Str, "Sample ID if available"),
                req(8, "processing_time", Timestamp, "Processing timestamp"),
                opt(9, "kafka_offset", Long, "Kafka offset of the failed message"),
                opt(10, "kafka_partition", Int, "Kafka partition"),
                opt(11, "kafka_topic", Str, "Kafka topic"),
                req(12, "error_date", Date, "Date partition"),
            ],
            vec![],
            vec![(4, "error_timestamp_day", Transform::Day), (2, "error_type", Transform::Identity)],
        ),
        TableKind::Aggregate(window) => {
            let mut fields =
                vec![req(1, "user_id", Str, "User identifier"), req(2, "data_type", Str, "Type of health data")];
            let (identifier, partition) = match window {
                WindowKind::Daily => {
                    fields.push(req(3, "aggregation_date", Date, "Date of aggregation"));
                    (vec![1, 2, 3], vec![(3, "aggregation_date", Transform::Identity)])
                }
                WindowKind::Weekly => {
                    fields.push(req(3, "year", Int, "ISO week-year"));
                    fields.push(req(4, "week_of_year", Int, "ISO week number"));
                    fields.push(req(5, "week_start_date", Date, "Monday of the week"));
                    fields.push(req(6, "week_end_date", Date, "Sunday of the week"));
                    (vec![1, 2, 3, 4], vec![(3, "year", Transform::Identity), (4, "week_of_year", Transform::Identity)])
                }
                WindowKind::Monthly => {
                    fields.push(req(3, "year", Int, "Year"));
                    fields.push(req(4, "month", Int, "Month (1-12)"));
                    fields.push(req(5, "month_start_date", Date, "First day of the month"));
                    fields.push(req(6, "month_end_date", Date, "Last day of the month"));
                    (vec![1, 2, 3, 4], vec![(3, "year", Transform::Identity), (4, "month", Transform::Identity)])
                }
            };
            let mut partition = partition;
            partition.push((2, "data_type", Transform::Identity));
            let base = 10;
            fields.extend([
                req(base, "window_start", Timestamp, "Window start timestamp"),
                req(base + 1, "window_end", Timestamp, "Window end timestamp"),
                req(base + 2, "min_value", Double, "Minimum value in the window"),
                req(base + 3, "max_value", Double, "Maximum value in the window"),
                req(base + 4, "avg_value", Double, "Average value"),
                req(base + 5, "sum_value", Double, "Sum of all values"),
                req(base + 6, "count", Long, "Number of measurements"),
                req(base + 7, "stddev_value", Double, "Population standard deviation"),
            ]);
            match window {
                WindowKind::Daily => fields.extend([
                    req(base + 8, "first_value", Double, "First value in the window"),
                    req(base + 9, "last_value", Double, "Last value in the window"),
                ]),
                WindowKind::Weekly | WindowKind::Monthly => {
                    fields.push(req(base + 10, "daily_avg_of_avg", Double, "Average of daily averages"))
                }
            }
            fields.extend([
                req(base + 11, "record_count", Long, "Total number of records processed"),
                req(base + 12, "updated_at", Timestamp, "Last update timestamp"),
            ]);
            (fields, identifier, partition)
        }
    };
    let schema = Schema::builder()
        .with_schema_id(0)
        .with_fields(fields.into_iter().map(Into::into))
        .with_identifier_field_ids(identifier)
        .build()?;
    let mut spec = UnboundPartitionSpec::builder().with_spec_id(0);
    for (source, name, transform) in partition {
        spec = spec.add_partition_field(source, name, transform)?;
    }
    Ok(TableDefinition { schema, partition_spec: spec.build(), properties: properties(kind) })
}

fn properties(kind: TableKind) -> HashMap<String, String> {
    let mut props: Vec<(&str, &str)> = vec![
        ("write.format.default", "parquet"),
        ("write.parquet.compression-codec", "snappy"),
        // What `healthlake maintain --expire` reads (Iceberg's names): never fewer than 10
        // snapshots, and those within the age below.
        ("history.expire.min-snapshots-to-keep", "10"),
        ("write.metadata.previous-versions-max", "100"),
        // What `healthlake maintain` follows beside: metadata files that fall out of the log
        // above are deleted, and small manifests are merged up to this size.
        ("write.metadata.delete-after-commit.enabled", "true"),
        ("commit.manifest.target-size-bytes", "8388608"),
    ];
    match kind {
        TableKind::Raw => props.extend([
            ("write.parquet.page-size-bytes", "1048576"),
            ("write.parquet.row-group-size-bytes", "134217728"),
            ("write.metadata.compression-codec", "gzip"),
            ("write.target-file-size-bytes", "134217728"),
            ("commit.retry.num-retries", "3"),
            ("commit.retry.min-wait-ms", "100"),
            ("history.expire.max-snapshot-age-ms", "2592000000"),
        ]),
        TableKind::Errors => props.extend([
            ("write.target-file-size-bytes", "67108864"),
            ("history.expire.max-snapshot-age-ms", "2592000000"),
        ]),
        TableKind::Aggregate(_) => props.extend([
            ("write.target-file-size-bytes", "67108864"),
            // Every finalize run adds a snapshot: a week of time travel is plenty.
            ("history.expire.max-snapshot-age-ms", "604800000"),
            ("write.upsert.enabled", "true"),
            // The spec's Flink job used merge-on-read with equality deletes; DESIGN.md requires the
            // aggregates to stay readable by every engine (pyiceberg cannot read equality deletes),
            // so healthlake rewrites files instead and says so here for other writers.
            ("write.merge.mode", "copy-on-write"),
            ("write.update.mode", "copy-on-write"),
            ("write.delete.mode", "copy-on-write"),
        ]),
    }
    props.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
