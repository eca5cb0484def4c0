//! Primary keys of rows: the identifier fields of a table and their values per row, as upserts
//! match rows by them.

use arrow_array::{Array, ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use iceberg::table::Table;

use crate::LakeError;

/// One value of a primary-key column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    Str(String),
    Int(i64),
}

/// A row's primary key: its identifier-field values in schema order.
pub type RowKey = Vec<KeyPart>;

/// The primary keys of every row of `batch`, from the named columns.
pub fn row_keys(batch: &RecordBatch, key_columns: &[String]) -> Result<Vec<RowKey>, LakeError> {
    let columns: Vec<&ArrayRef> = key_columns
        .iter()
        .map(|name| batch.column_by_name(name).ok_or_else(|| LakeError::Schema(format!("no key column {name}"))))
        .collect::<Result<_, _>>()?;
    let mut keys = vec![Vec::with_capacity(columns.len()); batch.num_rows()];
    for (name, column) in key_columns.iter().zip(columns) {
        let unsupported = || LakeError::Schema(format!("key column {name} has type {}", column.data_type()));
        for (row, key) in keys.iter_mut().enumerate() {
            if column.is_null(row) {
                return Err(LakeError::Schema(format!("key column {name} is null in row {row}")));
            }
            key.push(match column.data_type() {
                DataType::Utf8 => KeyPart::Str(
                    column.as_any().downcast_ref::<StringArray>().ok_or_else(unsupported)?.value(row).to_string(),
                ),
                DataType::Int32 => KeyPart::Int(
                    column.as_any().downcast_ref::<Int32Array>().ok_or_else(unsupported)?.value(row).into(),
                ),
                DataType::Date32 => KeyPart::Int(
                    column.as_any().downcast_ref::<Date32Array>().ok_or_else(unsupported)?.value(row).into(),
                ),
                DataType::Int64 => {
                    KeyPart::Int(column.as_any().downcast_ref::<Int64Array>().ok_or_else(unsupported)?.value(row))
                }
                _ => return Err(unsupported()),
            });
        }
    }
    Ok(keys)
}

/// The identifier (primary-key) columns of a table, in schema order.
pub fn key_columns(table: &Table) -> Result<Vec<String>, LakeError> {
    let schema = table.metadata().current_schema();
    let mut ids: Vec<i32> = schema.identifier_field_ids().collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(LakeError::Schema(format!("{} has no identifier fields to upsert by", table.identifier())));
    }
    ids.iter()
        .map(|id| {
            schema
                .name_by_field_id(*id)
                .map(str::to_string)
                .ok_or_else(|| LakeError::Schema(format!("identifier field {id} is not in the schema")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn keys_come_from_string_date_and_int_columns() {
        use arrow_schema::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
            Field::new("week", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["u1", "u2"])),
                Arc::new(Date32Array::from(vec![20000, 20001])),
                Arc::new(Int32Array::from(vec![7, 8])),
            ],
        )
        .unwrap();
        let keys = row_keys(&batch, &["user_id".into(), "day".into(), "week".into()]).unwrap();
        assert_eq!(keys[1], vec![KeyPart::Str("u2".into()), KeyPart::Int(20001), KeyPart::Int(8)]);
        assert!(row_keys(&batch, &["nope".into()]).is_err());
    }
}
