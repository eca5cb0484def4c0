//! Reading tables back: row counts from snapshot summaries, and whole-table scans for summaries
//! and checks (small tables only; analysts use their engines).

use arrow_array::RecordBatch;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::expr::Predicate;

use crate::LakeError;
use crate::catalog::Lakehouse;
use crate::tables::TableKind;

impl Lakehouse {
    /// The table as the catalog has it, without creating it: `None` when it does not exist yet.
    /// For readers that may hold read-only permissions (the exporter), where [`Lakehouse::table`]
    /// would create a missing table.
    pub async fn existing_table(&self, kind: TableKind) -> Result<Option<iceberg::table::Table>, LakeError> {
        let ident = self.ident(kind);
        if !self.catalog().table_exists(&ident).await? {
            return Ok(None);
        }
        Ok(Some(self.catalog().load_table(&ident).await?))
    }

    /// `total-records` of the newest snapshot (0 for a table without data).
    pub async fn row_count(&self, kind: TableKind) -> Result<u64, LakeError> {
        let table = self.table(kind).await?;
        Ok(table
            .metadata()
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get("total-records").and_then(|v| v.parse().ok()))
            .unwrap_or(0))
    }

    /// Scans the selected columns of a table.
    pub async fn scan(&self, kind: TableKind, columns: &[&str]) -> Result<Vec<RecordBatch>, LakeError> {
        self.scan_stream(kind, columns, None).await?.try_collect().await
    }
}

impl Lakehouse {
    /// Streams the selected columns of the rows matching `filter` (all rows when `None`), with
    /// partition pruning and file skipping from the filter. Empty for a table without data.
    pub async fn scan_stream(
        &self,
        kind: TableKind,
        columns: &[&str],
        filter: Option<Predicate>,
    ) -> Result<BoxStream<'static, Result<RecordBatch, LakeError>>, LakeError> {
        let table = self.table(kind).await?;
        Self::scan_table(&table, columns, filter).await
    }

    /// As [`Lakehouse::scan_stream`], on a table already loaded.
    pub async fn scan_table(
        table: &iceberg::table::Table,
        columns: &[&str],
        filter: Option<Predicate>,
    ) -> Result<BoxStream<'static, Result<RecordBatch, LakeError>>, LakeError> {
        if table.metadata().current_snapshot().is_none() {
            return Ok(futures::stream::empty().boxed());
        }
        let mut scan = table.scan().select(columns.iter().copied());
        if let Some(filter) = filter {
            scan = scan.with_filter(filter);
        }
        let stream = scan.build()?.to_arrow().await?;
        Ok(stream.map_err(LakeError::from).boxed())
    }
}
