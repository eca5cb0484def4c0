//! Table properties after creation: healthlake declares its properties when it creates a table
//! (`tables.rs`), so a table created by an older version lacks the ones added since (the
//! `history.expire.*`, `write.metadata.delete-after-commit.enabled` and
//! `commit.manifest.target-size-bytes` that maintenance follows). Maintenance declares the
//! missing ones; a value already set, by healthlake or by an operator, is never changed.

use iceberg::Catalog;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use crate::tables::{TableKind, definition};
use crate::{LakeError, Lakehouse};

impl Lakehouse {
    /// Sets the properties healthlake declares for `kind` that the table does not have yet;
    /// returns their names (none: nothing was committed). No table yet: nothing to do.
    pub async fn declare_missing_properties(&self, kind: TableKind) -> Result<Vec<String>, LakeError> {
        let Some(table) = self.existing_table(kind).await? else { return Ok(vec![]) };
        let present = table.metadata().properties();
        let mut missing: Vec<(String, String)> =
            definition(kind)?.properties.into_iter().filter(|(key, _)| !present.contains_key(key)).collect();
        missing.sort();
        if missing.is_empty() {
            return Ok(vec![]);
        }
        self.set_properties(&table, &missing).await?;
        Ok(missing.into_iter().map(|(key, _)| key).collect())
    }

    /// Sets table properties in one commit (the catalog's own, with its conflict check).
    pub async fn set_properties(
        &self,
        table: &iceberg::table::Table,
        properties: &[(String, String)],
    ) -> Result<(), LakeError> {
        let tx = Transaction::new(table);
        let mut update = tx.update_table_properties();
        for (key, value) in properties {
            update = update.set(key.clone(), value.clone());
        }
        let catalog: &dyn Catalog = self.catalog();
        update.apply(tx)?.commit(catalog).await?;
        Ok(())
    }
}
