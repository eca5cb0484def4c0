//! Removing orphan files: files under a table's location that no metadata file references (what
//! lost commit races and crashed writers leave), older than a grace period so that a writer's
//! files are never taken before its commit lands.
//!
//! What is referenced is read from every metadata file the table knows (the current one and its
//! metadata log), through every snapshot's manifest list and manifests, whatever an entry's
//! status: a file is an orphan only if no retained metadata could ever lead a reader to it. A
//! manifest or manifest list that cannot be read stops the run before anything is deleted.

use std::collections::HashSet;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use iceberg::io::FileIO;
use iceberg::spec::{ManifestList, TableMetadata};
use serde::Serialize;

use crate::LakeError;
use crate::catalog::{Lakehouse, S3Settings};
use crate::storage::{ListedFile, list_s3};
use crate::tables::TableKind;

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanReport {
    pub table: String,
    /// Files under the table's location.
    pub files_listed: usize,
    /// Files the metadata references (metadata files, manifest lists, manifests, data files).
    pub files_referenced: usize,
    /// Unreferenced files older than the cutoff: removed, or listed on a dry run.
    pub orphans: Vec<String>,
    /// Unreferenced files newer than the cutoff, left for a later run (a writer may be about to
    /// commit them).
    pub too_recent: usize,
    pub dry_run: bool,
}

impl Lakehouse {
    /// Removes (or, on a dry run, lists) the files under `kind`'s location that no metadata file
    /// references and that were last modified before `older_than`. Callers keep the cutoff at
    /// least a day in the past (`healthlake maintain` refuses less).
    pub async fn remove_orphan_files(
        &self,
        kind: TableKind,
        s3: &S3Settings,
        older_than: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<OrphanReport, LakeError> {
        let mut report = OrphanReport { table: self.table_name(kind).to_string(), dry_run, ..Default::default() };
        let Some(table) = self.existing_table(kind).await? else { return Ok(report) };
        let location = table.metadata().location().trim_end_matches('/').to_string();
        let referenced = referenced_files(table.file_io(), table.metadata(), table.metadata_location()).await?;
        let listed = list_files(&location, s3).await?;
        report.files_listed = listed.len();
        report.files_referenced = referenced.len();
        let cutoff = SystemTime::from(older_than);
        for file in listed {
            if referenced.contains(&normalized(&file.path)) {
                continue;
            }
            // A file without a modification time is treated as new: never deleted on a guess.
            if file.modified.is_some_and(|m| m < cutoff) {
                report.orphans.push(file.path);
            } else {
                report.too_recent += 1;
            }
        }
        report.orphans.sort();
        if !dry_run {
            for path in &report.orphans {
                table.file_io().delete(path).await?;
            }
        }
        Ok(report)
    }
}

/// `file:///a/b` and `/a/b` name the same local file.
pub(crate) fn normalized(path: &str) -> String {
    path.strip_prefix("file://").unwrap_or(path).to_string()
}

/// Every file the table's metadata files reference, themselves included.
async fn referenced_files(
    file_io: &FileIO,
    current: &TableMetadata,
    current_location: Option<&str>,
) -> Result<HashSet<String>, LakeError> {
    let mut referenced = HashSet::new();
    let mut metadata_files: Vec<TableMetadata> = Vec::new();
    if let Some(location) = current_location {
        referenced.insert(normalized(location));
    }
    for entry in current.metadata_log() {
        referenced.insert(normalized(&entry.metadata_file));
        // An old metadata file may already be gone (deleted after commit); one that is there is
        // read, since a reader holding it could still follow its snapshots.
        if !file_io.exists(&entry.metadata_file).await? {
            continue;
        }
        let metadata = TableMetadata::read_from(file_io, &entry.metadata_file)
            .await
            .map_err(|e| LakeError::CorruptMetadata { path: entry.metadata_file.clone(), reason: e.to_string() })?;
        metadata_files.push(metadata);
    }
    // The current metadata must be whole: a manifest missing there stops the run (its data files
    // would look unreferenced). Older metadata may point at files snapshot expiry deleted.
    let older: Vec<&TableMetadata> = metadata_files.iter().collect();
    let reachable = reachable_files(file_io, &[current], FileStatus::Any, Missing::Fail)
        .await?
        .into_iter()
        .chain(reachable_files(file_io, &older, FileStatus::Any, Missing::Skip).await?);
    // Compared with a listing, which spells local paths without `file://`.
    referenced.extend(reachable.map(|path| normalized(&path)));
    Ok(referenced)
}

/// Which manifest entries count as reaching their data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileStatus {
    /// Any entry, deleted ones too: a file an entry still names is never called an orphan.
    Any,
    /// Added and existing entries: the files a snapshot's readers read.
    Live,
}

/// What to do with a manifest list or manifest that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Fail,
    Skip,
}

/// The manifest lists, manifests and data files the snapshots of `metadata_files` reach, spelt
/// as the metadata spells them.
pub(crate) async fn reachable_files(
    file_io: &FileIO,
    metadata_files: &[&TableMetadata],
    status: FileStatus,
    missing: Missing,
) -> Result<HashSet<String>, LakeError> {
    let mut reachable = HashSet::new();
    let mut manifests_read = HashSet::new();
    for metadata in metadata_files {
        for snapshot in metadata.snapshots() {
            reachable.insert(snapshot.manifest_list().to_string());
            if skipped(file_io, snapshot.manifest_list(), missing).await {
                continue;
            }
            let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
            let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
            for manifest in list.entries() {
                reachable.insert(manifest.manifest_path.clone());
                if !manifests_read.insert(manifest.manifest_path.clone())
                    || skipped(file_io, &manifest.manifest_path, missing).await
                {
                    continue;
                }
                for entry in manifest.load_manifest(file_io).await?.entries() {
                    if status == FileStatus::Any || entry.is_alive() {
                        reachable.insert(entry.data_file().file_path().to_string());
                    }
                }
            }
        }
    }
    Ok(reachable)
}

/// Whether a file that is not there is to be passed over.
async fn skipped(file_io: &FileIO, path: &str, missing: Missing) -> bool {
    missing == Missing::Skip && !file_io.exists(path).await.unwrap_or(true)
}

/// Every file under the table's location, with its modification time.
pub(crate) async fn list_files(location: &str, s3: &S3Settings) -> Result<Vec<ListedFile>, LakeError> {
    if location.starts_with("s3://") || location.starts_with("s3a://") {
        return Ok(list_s3(&s3.file_io_props(), location).await?);
    }
    let root = std::path::PathBuf::from(normalized(location));
    let mut files = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(listing(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| listing(&dir, e))?;
            let metadata = entry.metadata().map_err(|e| listing(&entry.path(), e))?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let path = format!("file://{}", entry.path().display());
                files.push(ListedFile { path, modified: metadata.modified().ok() });
            }
        }
    }
    Ok(files)
}

fn listing(path: &std::path::Path, e: std::io::Error) -> LakeError {
    LakeError::Listing { path: path.display().to_string(), reason: e.to_string() }
}
