//! `DataFileSink::write_all` (one batch, a few partitions at a time) writes the same files a
//! sink fed with `write` does: one per partition, every row once, readable after an append.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::{Array, Int64Array};
use common::{raw_row, sql_settings};
use healthlake_core::RawRecord;
use healthlake_lake::{DataFileSink, Lakehouse, TableKind, rows};

/// 120 rows over four days and four data types: 16 partitions, more than the sink writes at once.
fn spread_rows() -> Vec<RawRecord> {
    (0..120)
        .map(|offset| {
            let mut row = raw_row(0, offset);
            row.data_type = ["heartRate", "steps", "restingHeartRate", "bodyMass"][(offset % 4) as usize].into();
            row
        })
        .collect()
}

/// Record count per partition (its Debug form), and the sum.
fn per_partition(files: &[iceberg::spec::DataFile]) -> (BTreeMap<String, u64>, u64) {
    let mut by_partition = BTreeMap::new();
    for file in files {
        *by_partition.entry(format!("{:?}", file.partition())).or_default() += file.record_count();
    }
    let total = by_partition.values().sum();
    (by_partition, total)
}

#[tokio::test]
async fn write_all_writes_one_file_per_partition_with_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lakehouse::open(&sql_settings(dir.path())).await.unwrap();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let rows_ = spread_rows();
    let partitions: BTreeSet<(chrono::NaiveDate, String)> =
        rows_.iter().map(|r| (r.start_date.date_naive(), r.data_type.clone())).collect();
    assert_eq!(partitions.len(), 16);

    let sink = DataFileSink::new(&table, "all").unwrap();
    let batch = rows::raw_batch(sink.arrow_schema(), &rows_).unwrap();
    let files = sink.write_all(&batch).await.unwrap();
    assert_eq!(files.len(), partitions.len(), "one file per partition");
    let (by_partition, total) = per_partition(&files);
    assert_eq!(total, 120);

    let mut fanout = DataFileSink::new(&table, "fanout").unwrap();
    fanout.write(&batch).await.unwrap();
    let (fanout_by_partition, _) = per_partition(&fanout.close().await.unwrap());
    assert_eq!(by_partition, fanout_by_partition, "the same partitions and counts as the fanout sink");

    let consumed = BTreeMap::from([("t-0".to_string(), (0, 119))]);
    lake.append(TableKind::Raw, files, &consumed).await.unwrap();
    let read = lake.scan(TableKind::Raw, &["kafka_offset"]).await.unwrap();
    let mut offsets: Vec<i64> = read
        .iter()
        .flat_map(|b| {
            let column = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..column.len()).map(|i| column.value(i)).collect::<Vec<_>>()
        })
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..120).collect::<Vec<i64>>(), "every row once");
}
