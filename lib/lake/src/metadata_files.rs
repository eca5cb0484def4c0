//! Old metadata files: every commit writes a new table metadata JSON, and the current one lists
//! only the newest `write.metadata.previous-versions-max` before it in its metadata log. With
//! `write.metadata.delete-after-commit.enabled`, Iceberg's writers delete the ones that fall out
//! of the log; healthlake's writers do not (the iceberg crate has no such step), so maintenance
//! does it for them.
//!
//! Only files older than every version the current metadata still lists are deleted. A metadata
//! file newer than the current one belongs to a writer about to move the pointer, and one the
//! log lists is one a reader may hold.

use std::collections::HashSet;

use serde::Serialize;

use crate::LakeError;
use crate::catalog::{Lakehouse, S3Settings};
use crate::orphans::{list_files, normalized};
use crate::tables::TableKind;

const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataFilesReport {
    pub table: String,
    /// Metadata files the current metadata lists (itself and its log).
    pub retained: usize,
    /// Older metadata files deleted (on a dry run, that would be).
    pub deleted: Vec<String>,
    /// False when the table does not enable `write.metadata.delete-after-commit.enabled`.
    pub enabled: bool,
    pub dry_run: bool,
}

impl Lakehouse {
    /// Deletes the metadata files of `kind` older than what its metadata log retains.
    pub async fn delete_old_metadata(
        &self,
        kind: TableKind,
        s3: &S3Settings,
        dry_run: bool,
    ) -> Result<MetadataFilesReport, LakeError> {
        let mut report =
            MetadataFilesReport { table: self.table_name(kind).to_string(), dry_run, ..Default::default() };
        let Some(table) = self.existing_table(kind).await? else { return Ok(report) };
        let metadata = table.metadata();
        report.enabled = metadata.properties().get(DELETE_AFTER_COMMIT).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !report.enabled {
            return Ok(report);
        }
        let retained: HashSet<String> = metadata
            .metadata_log()
            .iter()
            .map(|entry| normalized(&entry.metadata_file))
            .chain(table.metadata_location().map(normalized))
            .collect();
        report.retained = retained.len();
        let Some(oldest_retained) = retained.iter().filter_map(|path| version_of(path)).min() else {
            return Ok(report);
        };
        let location = format!("{}/metadata", metadata.location().trim_end_matches('/'));
        for file in list_files(&location, s3).await? {
            let path = normalized(&file.path);
            if !retained.contains(&path) && version_of(&path).is_some_and(|v| v < oldest_retained) {
                report.deleted.push(file.path);
            }
        }
        report.deleted.sort();
        if !dry_run {
            for path in &report.deleted {
                table.file_io().delete(path).await?;
            }
        }
        Ok(report)
    }
}

/// The version of a metadata file named `NNNNN-<uuid>.metadata.json` (or `.gz.metadata.json`),
/// as Iceberg's writers name them; `None` for any other file.
fn version_of(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    if !name.ends_with(".metadata.json") {
        return None;
    }
    name.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_metadata_file_names_only() {
        assert_eq!(version_of("s3://b/t/metadata/00012-0f3a.metadata.json"), Some(12));
        assert_eq!(version_of("/t/metadata/00003-ab.gz.metadata.json"), Some(3));
        assert_eq!(version_of("s3://b/t/metadata/snap-123-1-ab.avro"), None);
        assert_eq!(version_of("s3://b/t/metadata/v1.metadata.json"), None);
    }
}
