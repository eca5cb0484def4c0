//! Manifest rewrite: every append and upsert adds a manifest (`fast_append` never merges them),
//! so after weeks a scan plans thousands. The small data manifests of the current snapshot (below
//! the table's `commit.manifest.target-size-bytes`, Iceberg's 8 MiB by default) are merged into
//! manifests of about that size, their entries ordered by partition so that a scan filtering on
//! a partition opens few of them. The data files do not change: one `replace` snapshot lists the
//! same live files, each as an existing entry with the snapshot and sequence numbers it had.
//!
//! Published with the compare-and-swap of every rewrite; a lost race plans again on the new
//! version (manifests are small: planning again is cheap).

use std::collections::HashMap;

use backon::Retryable;
use iceberg::spec::{ManifestContentType, ManifestFile, ManifestWriterBuilder, Operation, Summary};
use serde::Serialize;

use crate::commit::Attempt;
use crate::compact::MAINTENANCE_PROPERTY;
use crate::manifests::current_manifests;
use crate::offsets::carried_summary;
use crate::retry::commit_backoff;
use crate::rewrite::NextSnapshot;
use crate::tables::TableKind;
use crate::{LakeError, Lakehouse};

const TARGET_SIZE: &str = "commit.manifest.target-size-bytes";
const TARGET_SIZE_DEFAULT: u64 = 8 << 20;
const ATTEMPTS: u32 = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRewriteReport {
    pub table: String,
    pub manifests_before: usize,
    pub manifests_after: usize,
    /// Manifests merged, and the live entries they held.
    pub manifests_replaced: usize,
    pub entries: usize,
    pub snapshot_id: Option<i64>,
    pub conflicts_retried: u32,
    pub dry_run: bool,
}

impl Lakehouse {
    /// Merges the small data manifests of `kind`'s current snapshot (see the module's rules).
    pub async fn rewrite_manifests(&self, kind: TableKind, dry_run: bool) -> Result<ManifestRewriteReport, LakeError> {
        let table_name = self.table_name(kind).to_string();
        let pointer = self.pointer().ok_or_else(|| {
            LakeError::Config(format!("rewriting the manifests of {table_name} needs the sql or glue catalog"))
        })?;
        let attempt = || async {
            let mut report = ManifestRewriteReport { table: table_name.clone(), dry_run, ..Default::default() };
            let Some(table) = self.existing_table(kind).await? else { return Ok(report) };
            let metadata = table.metadata();
            let target = metadata
                .properties()
                .get(TARGET_SIZE)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(TARGET_SIZE_DEFAULT);
            let manifests = current_manifests(&table).await?;
            report.manifests_before = manifests.len();
            // Per partition spec: a manifest holds the files of one spec.
            let mut small: HashMap<i32, Vec<usize>> = HashMap::new();
            for (i, (manifest, _)) in manifests.iter().enumerate() {
                if manifest.content == ManifestContentType::Data && (manifest.manifest_length as u64) < target {
                    small.entry(manifest.partition_spec_id).or_default().push(i);
                }
            }
            small.retain(|_, merged| merged.len() > 1);
            if small.is_empty() {
                report.manifests_after = report.manifests_before;
                return Ok(report);
            }
            let merged: std::collections::HashSet<usize> = small.values().flatten().copied().collect();
            let mut next_manifests: Vec<ManifestFile> = manifests
                .iter()
                .enumerate()
                .filter(|(i, _)| !merged.contains(i))
                .map(|(_, (manifest, _))| manifest.clone())
                .collect();
            let mut next = NextSnapshot::on(&table)?;
            let mut specs: Vec<_> = small.into_iter().collect();
            specs.sort_by_key(|(spec_id, _)| *spec_id);
            for (spec_id, indices) in specs {
                let spec = metadata
                    .partition_spec_by_id(spec_id)
                    .ok_or_else(|| LakeError::Schema(format!("a manifest names unknown partition spec {spec_id}")))?;
                // Entries kept with the manifest they came from (its snapshot and sequence
                // number stand in for what an entry inherits).
                let mut entries: Vec<_> = indices
                    .iter()
                    .flat_map(|i| {
                        let (manifest, entries) = &manifests[*i];
                        entries.iter().filter(|e| e.is_alive()).map(move |e| (manifest, e))
                    })
                    .collect();
                let bytes: u64 = indices.iter().map(|i| manifests[*i].0.manifest_length as u64).sum();
                let all_entries: usize = indices.iter().map(|i| manifests[*i].1.len()).sum();
                report.manifests_replaced += indices.len();
                report.entries += entries.len();
                if dry_run || entries.is_empty() {
                    continue;
                }
                entries.sort_by_cached_key(|(_, e)| format!("{:?}", e.data_file().partition()));
                // Entries per manifest for about `target` bytes, from what the merged ones weigh.
                let per_entry = (bytes / all_entries.max(1) as u64).max(1);
                let per_manifest = (target / per_entry).max(1) as usize;
                for chunk in entries.chunks(per_manifest) {
                    let mut writer = ManifestWriterBuilder::new(
                        table.file_io().new_output(next.manifest_path())?,
                        Some(next.snapshot_id),
                        metadata.current_schema().clone(),
                        spec.as_ref().clone(),
                    )
                    .build_v2_data();
                    for (manifest, entry) in chunk {
                        let seq = entry.sequence_number().unwrap_or(manifest.sequence_number);
                        let file_seq = entry.file_sequence_number.or(Some(seq));
                        let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
                        writer.add_existing_file(entry.data_file().clone(), added_by, seq, file_seq)?;
                    }
                    next_manifests.push(writer.write_manifest_file().await?);
                }
            }
            if dry_run {
                return Ok(report);
            }
            report.manifests_after = next_manifests.len();
            let summary =
                Summary { operation: Operation::Replace, additional_properties: rewrite_summary(&table, &report) };
            report.snapshot_id = Some(next.publish(pointer, next_manifests, summary).await?.ok_or(Attempt::Conflict)?);
            Ok(report)
        };
        let mut conflicts = 0;
        let rewritten = attempt
            .retry(commit_backoff(ATTEMPTS))
            .when(|e| matches!(e, Attempt::Conflict))
            .notify(|_, _| conflicts += 1)
            .await;
        match rewritten {
            Ok(report) => Ok(ManifestRewriteReport { conflicts_retried: conflicts, ..report }),
            Err(Attempt::Conflict) => Err(LakeError::CommitConflict { table: table_name, attempts: ATTEMPTS }),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }
}

/// The summary of a manifest rewrite: the `healthlake.*` keys carried forward, Iceberg's
/// rewrite-manifests counts, and the totals unchanged (no data file moved).
fn rewrite_summary(table: &iceberg::table::Table, report: &ManifestRewriteReport) -> HashMap<String, String> {
    let mut props = carried_summary(table);
    props.insert(MAINTENANCE_PROPERTY.to_string(), "rewrite-manifests".to_string());
    let created = report.manifests_after + report.manifests_replaced - report.manifests_before;
    props.insert("manifests-created".into(), created.to_string());
    props.insert("manifests-replaced".into(), report.manifests_replaced.to_string());
    props.insert("manifests-kept".into(), (report.manifests_before - report.manifests_replaced).to_string());
    props.insert("entries-processed".into(), report.entries.to_string());
    if let Some(previous) = table.metadata().current_snapshot() {
        for (key, value) in &previous.summary().additional_properties {
            if key.starts_with("total-") {
                props.insert(key.clone(), value.clone());
            }
        }
    }
    props
}
