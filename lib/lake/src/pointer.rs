//! The last step of a commit the iceberg crate cannot make for us: moving a table's metadata
//! pointer from the version a change was built on to the new metadata file, as one
//! compare-and-swap in the catalog. The crate keeps `TableCommit` construction private, so an
//! overwrite snapshot cannot go through `Catalog::update_table`; these do what its SQL and Glue
//! catalogs do inside `update_table`, with the same conventions, so both stay interchangeable.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_glue::config::http::HttpResponse;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::operation::update_table::UpdateTableError;
use aws_sdk_glue::types::TableInput;
use healthlake_core::{ErrorClass, classify_aws_error};
use iceberg::TableIdent;

use crate::LakeError;

/// Glue table parameters the Iceberg convention (and iceberg-catalog-glue) uses.
const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

/// Swaps a table's metadata pointer.
#[async_trait]
pub(crate) trait MetadataPointer: Send + Sync {
    /// Points `table` at `new_location` when it still points at `expected`. `Ok(false)`: another
    /// writer moved it first; nothing was changed.
    async fn swap(&self, table: &TableIdent, expected: &str, new_location: &str) -> Result<bool, LakeError>;
}

/// The SQL catalog's `iceberg_tables` row: an `UPDATE ... WHERE metadata_location = expected`,
/// the statement iceberg-catalog-sql (and pyiceberg's `SqlCatalog`) commit with.
pub(crate) struct SqlPointer {
    pub(crate) pool: sqlx::SqlitePool,
    pub(crate) catalog_name: String,
}

#[async_trait]
impl MetadataPointer for SqlPointer {
    async fn swap(&self, table: &TableIdent, expected: &str, new_location: &str) -> Result<bool, LakeError> {
        let result = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
               AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
        )
        .bind(new_location)
        .bind(expected)
        .bind(&self.catalog_name)
        .bind(table.namespace().join("."))
        .bind(table.name())
        .bind(expected)
        .execute(&self.pool)
        .await
        .map_err(|e| LakeError::Catalog(format!("SQL catalog update of {table}: {e}")))?;
        Ok(result.rows_affected() == 1)
    }
}

/// Glue: `UpdateTable` with the `VersionId` of the table definition that was read, the optimistic
/// lock iceberg-catalog-glue uses. Everything but the two location parameters is carried over
/// from the definition read, so columns, description and other parameters stay as they were.
pub(crate) struct GluePointer {
    pub(crate) client: aws_sdk_glue::Client,
    pub(crate) catalog_id: Option<String>,
}

#[async_trait]
impl MetadataPointer for GluePointer {
    async fn swap(&self, table: &TableIdent, expected: &str, new_location: &str) -> Result<bool, LakeError> {
        let database = table.namespace().join(".");
        let glue_err = |what: &str, e: String| LakeError::Catalog(format!("Glue {what} of {table}: {e}"));
        let current = self
            .client
            .get_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&database)
            .name(table.name())
            .send()
            .await
            .map_err(|e| glue_request_failed(format!("Glue GetTable of {table}"), e))?;
        let current = current.table.ok_or_else(|| glue_err("GetTable", "no table in the answer".into()))?;
        let mut parameters: HashMap<String, String> = current.parameters.clone().unwrap_or_default();
        if parameters.get(METADATA_LOCATION).map(String::as_str) != Some(expected) {
            return Ok(false);
        }
        parameters.insert(METADATA_LOCATION.into(), new_location.into());
        parameters.insert(PREVIOUS_METADATA_LOCATION.into(), expected.into());
        let input = TableInput::builder()
            .name(current.name.clone())
            .set_description(current.description.clone())
            .set_owner(current.owner.clone())
            .set_retention(Some(current.retention))
            .set_storage_descriptor(current.storage_descriptor.clone())
            .set_partition_keys(current.partition_keys.clone())
            .set_table_type(current.table_type.clone())
            .set_parameters(Some(parameters))
            .build()
            .map_err(|e| glue_err("TableInput", e.to_string()))?;
        let sent = self
            .client
            .update_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&database)
            .table_input(input)
            .set_version_id(current.version_id.clone())
            .skip_archive(true)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateTableError::ConcurrentModificationException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_request_failed(format!("Glue UpdateTable of {table}"), e)),
        }
    }
}

/// A failed Glue request, retryable or not by the code Glue answered with (no answer at all:
/// retryable).
fn glue_request_failed<E>(operation: String, e: SdkError<E, HttpResponse>) -> LakeError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let class = match &e {
        SdkError::ServiceError(_) => classify_aws_error(code.as_deref(), status),
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        _ => ErrorClass::Retryable,
    };
    let message = DisplayErrorContext(&e).to_string();
    LakeError::Aws { operation, code: code.unwrap_or_else(|| "none".into()), class, message }
}
