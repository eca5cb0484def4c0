//! What landed: rows per table, errors by type, a few aggregate rows.

use std::collections::BTreeMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use healthlake_core::WindowKind;
use healthlake_lake::TableKind;
use healthlake_pipeline::app::App;

pub(crate) async fn print(app: &App, rows: usize) -> Result<()> {
    println!("Rows per table ({}.{}):", app.settings.catalog.catalog_name, app.settings.catalog.database);
    for kind in TableKind::ALL {
        println!("  {:<28} {:>9}", app.lake.table_name(kind), app.lake.row_count(kind).await?);
    }
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for batch in app.lake.scan(TableKind::Errors, &["error_type"]).await? {
        let column = batch.column(0).as_string::<i32>();
        for v in column.iter().flatten() {
            *by_type.entry(v.to_string()).or_default() += 1;
        }
    }
    println!("Errors by type:");
    if by_type.is_empty() {
        println!("  (none)");
    }
    for (t, n) in &by_type {
        println!("  {t:<28} {n:>9}");
    }
    for kind in WindowKind::ALL {
        let period: &[&str] = match kind {
            WindowKind::Daily => &["aggregation_date"],
            WindowKind::Weekly => &["year", "week_of_year"],
            WindowKind::Monthly => &["year", "month"],
        };
        let mut columns = vec!["user_id", "data_type"];
        columns.extend_from_slice(period);
        columns.extend_from_slice(&["count", "min_value", "avg_value", "max_value", "stddev_value"]);
        let batches = app.lake.scan(TableKind::Aggregate(kind), &columns).await?;
        println!("{} aggregates (first {rows}):", kind);
        let mut shown = 0;
        for batch in &batches {
            for i in 0..batch.num_rows() {
                if shown == rows {
                    break;
                }
                println!("  {}", format_row(batch, i));
                shown += 1;
            }
        }
        if shown == 0 {
            println!("  (no window closed yet)");
        }
    }
    Ok(())
}

fn format_row(batch: &RecordBatch, i: usize) -> String {
    let schema = batch.schema();
    let mut parts = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let value = match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().value(i).to_string(),
            DataType::Int32 => column.as_primitive::<Int32Type>().value(i).to_string(),
            DataType::Int64 => column.as_primitive::<Int64Type>().value(i).to_string(),
            DataType::Float64 => format!("{:.2}", column.as_primitive::<Float64Type>().value(i)),
            DataType::Date32 => {
                let days = column.as_primitive::<Date32Type>().value(i);
                (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Days::new(days as u64))
                    .to_string()
            }
            other => format!("<{other}>"),
        };
        parts.push(format!("{}={value}", field.name()));
    }
    parts.join(" ")
}
