//! Publishing a snapshot that rewrites data files: the `overwrite` (upserts) and `replace`
//! (compaction) snapshots the iceberg crate (0.10) has no action for, built from the crate's
//! public pieces (manifest and manifest-list writers, the snapshot and table-metadata builders)
//! and published by moving the catalog's metadata pointer with a compare-and-swap
//! ([`crate::pointer`]).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use iceberg::MetadataLocation;
use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestFile, ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot,
    SnapshotSummaryCollector, Summary, TableMetadata, TableProperties,
};
use iceberg::table::Table;
use rand::Rng;

use crate::LakeError;
use crate::manifests::Manifests;
use crate::pointer::MetadataPointer;

/// A random name part for the files of one rewrite attempt (an attempt that loses its commit
/// leaves them unreferenced, for orphan removal).
pub(crate) fn uuid_like() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// A snapshot being built on exactly `base`: its id, sequence number and the names of the
/// files it writes.
pub(crate) struct NextSnapshot<'a> {
    pub(crate) base: &'a Table,
    pub(crate) snapshot_id: i64,
    pub(crate) sequence_number: i64,
    commit_id: String,
    manifests_written: usize,
}

impl<'a> NextSnapshot<'a> {
    /// Refuses tables of another format version than 2 (the manifests written are v2).
    pub(crate) fn on(base: &'a Table) -> Result<Self, LakeError> {
        let metadata = base.metadata();
        if metadata.format_version() != FormatVersion::V2 {
            return Err(LakeError::Config(format!(
                "{}: rewrite commits are written for format version 2, the table is {}",
                base.identifier(),
                metadata.format_version()
            )));
        }
        Ok(Self {
            base,
            snapshot_id: new_snapshot_id(metadata),
            sequence_number: metadata.next_sequence_number(),
            commit_id: uuid_like(),
            manifests_written: 0,
        })
    }

    /// A path for the next manifest this snapshot writes.
    pub(crate) fn manifest_path(&mut self) -> String {
        self.manifests_written += 1;
        format!("{}/metadata/{}-m{}.avro", self.base.metadata().location(), self.commit_id, self.manifests_written)
    }

    /// Writes the manifest list and the metadata, and moves the catalog's pointer from `base` to
    /// it. `None`: the table moved on since `base` (nothing was published; the caller re-reads
    /// and retries).
    pub(crate) async fn publish(
        self,
        pointer: &dyn MetadataPointer,
        manifests: Vec<ManifestFile>,
        summary: Summary,
    ) -> Result<Option<i64>, LakeError> {
        let (base, snapshot_id) = (self.base, self.snapshot_id);
        let metadata = base.metadata();
        let base_location = base
            .metadata_location()
            .ok_or_else(|| LakeError::Config(format!("{} has no metadata location", base.identifier())))?
            .to_string();
        let list_path = format!("{}/metadata/snap-{snapshot_id}-1-{}.avro", metadata.location(), self.commit_id);
        let mut list_writer = ManifestListWriter::v2(
            base.file_io().new_output(&list_path)?.writer().await?,
            snapshot_id,
            metadata.current_snapshot_id(),
            self.sequence_number,
        );
        list_writer.add_manifests(manifests.into_iter())?;
        list_writer.close().await?;

        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(metadata.current_snapshot_id())
            .with_sequence_number(self.sequence_number)
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis().max(metadata.last_updated_ms()))
            .with_manifest_list(list_path)
            .with_summary(summary)
            .with_schema_id(metadata.current_schema_id())
            .build();
        let new_metadata = metadata
            .clone()
            .into_builder(Some(base_location.clone()))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)?
            .build()?
            .metadata;
        let new_location =
            MetadataLocation::from_str(&base_location)?.with_next_version().with_new_metadata(&new_metadata);
        new_metadata.write_to(base.file_io(), &new_location).await?;
        let swapped = pointer.swap(base.identifier(), &base_location, &new_location.to_string()).await?;
        Ok(swapped.then_some(snapshot_id))
    }
}

/// Commits one snapshot of `operation` (`overwrite` for upserts, `replace` for compaction) on
/// exactly `base` (whose manifests are `manifests`): `removed` (live files of `base`) marked
/// deleted, `added` added, `properties` in the summary next to the computed counts. `None`: the
/// table moved on since `base` (nothing was published; the caller re-reads and retries).
pub(crate) async fn commit_rewrite(
    pointer: &dyn MetadataPointer,
    base: &Table,
    manifests: Manifests,
    removed: Vec<DataFile>,
    added: Vec<DataFile>,
    properties: HashMap<String, String>,
    operation: Operation,
) -> Result<Option<i64>, LakeError> {
    let metadata = base.metadata();
    let mut next = NextSnapshot::on(base)?;
    let snapshot_id = next.snapshot_id;
    let removed_paths: HashSet<&str> = removed.iter().map(DataFile::file_path).collect();

    let mut next_manifests: Vec<ManifestFile> = vec![];
    for (manifest, entries) in manifests {
        let touches = entries.iter().any(|e| e.is_alive() && removed_paths.contains(e.file_path()));
        if !touches {
            next_manifests.push(manifest);
            continue;
        }
        // Rewrite the manifest: removed files as deleted entries of this snapshot, the other
        // live files as existing entries with their original snapshot and sequence numbers.
        let spec = metadata
            .partition_spec_by_id(manifest.partition_spec_id)
            .ok_or_else(|| LakeError::Schema(format!("manifest {} names unknown spec", manifest.manifest_path)))?;
        let mut writer = ManifestWriterBuilder::new(
            base.file_io().new_output(next.manifest_path())?,
            Some(snapshot_id),
            metadata.current_schema().clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for entry in entries.iter().filter(|e| e.is_alive()) {
            let seq = entry.sequence_number().unwrap_or(manifest.sequence_number);
            let file_seq = entry.file_sequence_number.or(Some(seq));
            if removed_paths.contains(entry.file_path()) {
                writer.add_delete_file(entry.data_file().clone(), seq, file_seq)?;
            } else {
                let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
                writer.add_existing_file(entry.data_file().clone(), added_by, seq, file_seq)?;
            }
        }
        next_manifests.push(writer.write_manifest_file().await?);
    }

    let mut collector = SnapshotSummaryCollector::default();
    let limit = metadata
        .properties()
        .get(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT)
        .and_then(|l| l.parse().ok())
        .unwrap_or(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT_DEFAULT);
    collector.set_partition_summary_limit(limit);
    let (schema, spec) = (metadata.current_schema().clone(), metadata.default_partition_spec().clone());
    for file in &removed {
        collector.remove_file(file, schema.clone(), spec.clone());
    }
    if !added.is_empty() {
        for file in &added {
            collector.add_file(file, schema.clone(), spec.clone());
        }
        let mut writer = ManifestWriterBuilder::new(
            base.file_io().new_output(next.manifest_path())?,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for file in added {
            // A negative sequence number leaves it to be inherited from the manifest list.
            writer.add_file(file, -1)?;
        }
        next_manifests.push(writer.write_manifest_file().await?);
    }

    let summary = Summary {
        operation,
        additional_properties: with_totals(
            properties.into_iter().chain(collector.build()).collect(),
            metadata.current_snapshot().map(|s| s.summary()),
        ),
    };
    next.publish(pointer, next_manifests, summary).await
}

/// A positive snapshot id not used by the table yet.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let id = rand::rng().random_range(1..i64::MAX);
        if metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Adds the `total-*` counts (previous total + added − removed), as the Iceberg spec's summary
/// has them; the crate's helper for this is not public.
pub(crate) fn with_totals(mut props: HashMap<String, String>, previous: Option<&Summary>) -> HashMap<String, String> {
    const TOTALS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-delete-files", "added-delete-files", "removed-delete-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
    ];
    let get = |props: &HashMap<String, String>, key: &str| -> u64 {
        props.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    for (total, added, removed) in TOTALS {
        let before = previous.map(|s| get(&s.additional_properties, total)).unwrap_or(0);
        let after = (before + get(&props, added)).saturating_sub(get(&props, removed));
        props.insert(total.to_string(), after.to_string());
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_carry_forward_and_subtract_what_was_removed() {
        let previous = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([
                ("total-records".to_string(), "100".to_string()),
                ("total-data-files".to_string(), "4".to_string()),
                ("total-files-size".to_string(), "4000".to_string()),
            ]),
        };
        let props = HashMap::from([
            ("added-records".to_string(), "30".to_string()),
            ("deleted-records".to_string(), "25".to_string()),
            ("added-data-files".to_string(), "1".to_string()),
            ("deleted-data-files".to_string(), "2".to_string()),
        ]);
        let totals = with_totals(props, Some(&previous));
        assert_eq!(totals["total-records"], "105");
        assert_eq!(totals["total-data-files"], "3");
        assert_eq!(totals["total-files-size"], "4000");
        assert_eq!(totals["total-delete-files"], "0");
    }
}
