//! Finding the committed-offset map in a table's snapshot ancestry.
//!
//! healthlake's commits carry the map in their snapshot summary, but other engines commit to the
//! same tables (Athena OPTIMIZE, a Glue optimizer, a GDPR delete with Spark or pyiceberg) and
//! their snapshots carry none of healthlake's keys. So the map is read from the newest ancestor
//! of the current snapshot that has it, as Flink's Iceberg committer does, and every healthlake
//! commit carries that ancestor's keys forward.

use std::collections::HashMap;

use iceberg::spec::{SnapshotRef, TableMetadata};
use iceberg::table::Table;

use crate::LakeError;
use crate::commit::{OFFSETS_PROPERTY, OffsetMap};

/// The newest snapshot in the current snapshot's ancestry whose summary has the offset map;
/// `None` when the ancestry goes back to the table's first snapshot without one (healthlake has
/// not committed to the table yet).
///
/// When the walk meets a parent that is no longer in the metadata (another engine expired the
/// snapshots up to and including the one carrying the map, and only its own commits lie above),
/// the map is unknowable: an empty map would let the next redelivery append every row again, so
/// this fails with [`LakeError::OffsetsLost`] instead, until an operator restores the map.
fn offset_carrier<'a>(table: &str, metadata: &'a TableMetadata) -> Result<Option<&'a SnapshotRef>, LakeError> {
    let mut next = metadata.current_snapshot();
    // Bounded by the number of snapshots, so corrupt metadata with a parent cycle cannot hang us.
    for _ in 0..=metadata.snapshots().count() {
        let Some(snapshot) = next else { return Ok(None) };
        if snapshot.summary().additional_properties.contains_key(OFFSETS_PROPERTY) {
            return Ok(Some(snapshot));
        }
        next = match snapshot.parent_snapshot_id() {
            None => None,
            Some(parent) => Some(metadata.snapshot_by_id(parent).ok_or_else(|| LakeError::OffsetsLost {
                table: table.to_string(),
                snapshot: snapshot.snapshot_id(),
                parent,
            })?),
        };
    }
    Err(LakeError::CorruptOffsets { table: table.to_string(), reason: "the snapshot ancestry has a cycle".into() })
}

/// The committed offset map of a table: the one of the newest snapshot in the current
/// snapshot's ancestry that carries it (empty for a table healthlake has not committed to).
pub fn committed_offsets(table: &Table) -> Result<OffsetMap, LakeError> {
    offsets_in(&table.identifier().to_string(), table.metadata())
}

fn offsets_in(table: &str, metadata: &TableMetadata) -> Result<OffsetMap, LakeError> {
    match offset_carrier(table, metadata)? {
        None => Ok(OffsetMap::new()),
        Some(snapshot) => serde_json::from_str(&snapshot.summary().additional_properties[OFFSETS_PROPERTY])
            .map_err(|e| LakeError::CorruptOffsets { table: table.to_string(), reason: e.to_string() }),
    }
}

/// The `healthlake.*` summary keys for the next snapshot, taken from the newest ancestor that
/// carries the offset map (the current snapshot when healthlake made it), so a commit on top of
/// other engines' snapshots puts the map back on the newest snapshot. Keys that describe one
/// snapshot only (which replay it appended, which maintenance made it) are not carried: expiry
/// keeps every replay snapshot, and a later append must not pass for one.
///
/// Empty when no ancestor carries it. On an ancestry cut by another engine's expiry this stays
/// quiet rather than failing an upsert of a table that never had a map: the commit made with it
/// keeps the cut below it, so [`committed_offsets`] still refuses to guess.
const PER_SNAPSHOT_PROPERTIES: [&str; 2] = [crate::replay::REPLAY_PROPERTY, crate::compact::MAINTENANCE_PROPERTY];

pub(crate) fn carried_summary(table: &Table) -> HashMap<String, String> {
    carried_in(&table.identifier().to_string(), table.metadata())
}

fn carried_in(table: &str, metadata: &TableMetadata) -> HashMap<String, String> {
    let Ok(Some(carrier)) = offset_carrier(table, metadata) else {
        return HashMap::new();
    };
    carrier
        .summary()
        .additional_properties
        .iter()
        .filter(|(k, _)| k.starts_with("healthlake.") && !PER_SNAPSHOT_PROPERTIES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use iceberg::TableCreation;
    use iceberg::spec::{
        MAIN_BRANCH, NestedField, Operation, PrimitiveType, Schema, Snapshot, Summary, TableMetadataBuilder, Type,
    };

    use super::*;

    /// Table metadata whose main branch is a chain of snapshots 1, 2, … with these summaries
    /// (`Some(json)`: a healthlake commit carrying that offset map; `None`: another engine's).
    fn history(maps: &[Option<&str>]) -> TableMetadata {
        let schema = Schema::builder()
            .with_fields([NestedField::required(1, "x", Type::Primitive(PrimitiveType::Long)).into()])
            .build()
            .unwrap();
        let creation =
            TableCreation::builder().name("raw".into()).location("file:///lake/raw".into()).schema(schema).build();
        let mut builder = TableMetadataBuilder::from_table_creation(creation).unwrap();
        for (i, map) in maps.iter().enumerate() {
            let id = i as i64 + 1;
            let mut props = HashMap::from([("added-records".to_string(), "1".to_string())]);
            if let Some(json) = map {
                props.insert(OFFSETS_PROPERTY.into(), json.to_string());
                props.insert("healthlake.other".into(), format!("v{id}"));
                // Keys of one snapshot only: never carried.
                props.insert(crate::replay::REPLAY_PROPERTY.into(), format!("t-0:{id}-{id}"));
                props.insert(crate::compact::MAINTENANCE_PROPERTY.into(), "compact".into());
            }
            let snapshot = Snapshot::builder()
                .with_snapshot_id(id)
                .with_parent_snapshot_id((id > 1).then_some(id - 1))
                .with_sequence_number(id)
                .with_timestamp_ms(1_700_000_000_000 + id)
                .with_manifest_list(format!("file:///lake/raw/metadata/snap-{id}.avro"))
                .with_summary(Summary { operation: Operation::Append, additional_properties: props })
                .with_schema_id(0)
                .build();
            builder = builder.set_branch_snapshot(snapshot, MAIN_BRANCH).unwrap();
        }
        builder.build().unwrap().metadata
    }

    fn map(entries: &[(&str, i64)]) -> OffsetMap {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_map_comes_from_the_newest_ancestor_that_carries_it() {
        let metadata = history(&[Some(r#"{"t-0":4}"#), Some(r#"{"t-0":9,"t-1":3}"#), None, None]);
        assert_eq!(offsets_in("raw", &metadata).unwrap(), map(&[("t-0", 9), ("t-1", 3)]));
        assert_eq!(offset_carrier("raw", &metadata).unwrap().unwrap().snapshot_id(), 2);
    }

    #[test]
    fn the_next_commit_carries_the_healthlake_keys_of_that_ancestor() {
        let metadata = history(&[Some(r#"{"t-0":4}"#), Some(r#"{"t-0":9}"#), None]);
        let carried = carried_in("raw", &metadata);
        assert_eq!(carried.len(), 2, "{carried:?}");
        assert_eq!(carried[OFFSETS_PROPERTY], r#"{"t-0":9}"#);
        assert_eq!(carried["healthlake.other"], "v2");
        assert!(carried_in("raw", &history(&[None])).is_empty());
    }

    #[test]
    fn a_table_without_a_map_in_its_whole_ancestry_has_committed_nothing() {
        assert_eq!(offsets_in("raw", &history(&[])).unwrap(), OffsetMap::new());
        assert_eq!(offsets_in("raw", &history(&[None, None])).unwrap(), OffsetMap::new());
    }

    #[test]
    fn an_ancestry_cut_above_the_map_by_an_expiry_fails_loud_instead_of_reading_an_empty_map() {
        let metadata = history(&[Some(r#"{"t-0":9}"#), None, None]);
        let expired = metadata.into_builder(None).remove_snapshots(&[1, 2]).build().unwrap().metadata;
        let err = offsets_in("raw", &expired).unwrap_err();
        assert!(matches!(err, LakeError::OffsetsLost { snapshot: 3, parent: 2, .. }), "{err}");
        assert!(!err.is_retryable(), "a redelivery cannot bring the map back");
    }

    #[test]
    fn an_expiry_that_keeps_the_carrier_changes_nothing() {
        let metadata = history(&[Some(r#"{"t-0":4}"#), Some(r#"{"t-0":9}"#), None]);
        let expired = metadata.into_builder(None).remove_snapshots(&[1]).build().unwrap().metadata;
        assert_eq!(offsets_in("raw", &expired).unwrap(), map(&[("t-0", 9)]));
    }
}
