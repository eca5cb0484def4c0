//! Old metadata files go once they fall out of the metadata log (the table's
//! `write.metadata.previous-versions-max`), never one the log still lists; and properties a
//! table created by an older version lacks are declared without touching the ones it has.

mod common;

use common::{append_batch, sql_settings};
use healthlake_lake::{Lakehouse, TableKind};
use iceberg::transaction::{ApplyTransactionAction, Transaction};

/// The metadata JSON files under the table's location.
fn metadata_files(location: &str) -> Vec<String> {
    let dir = std::path::Path::new(location.strip_prefix("file://").unwrap_or(location)).join("metadata");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(".metadata.json"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn metadata_files_older_than_the_log_are_deleted_and_missing_properties_declared() {
    let dir = tempfile::tempdir().unwrap();
    let settings = sql_settings(dir.path());
    let lake = Lakehouse::open(&settings).await.unwrap();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let location = table.metadata().location().to_string();
    // A table from before these properties existed: the deletion switch is not there.
    let tx = Transaction::new(&table);
    let update = tx.update_table_properties().remove("write.metadata.delete-after-commit.enabled".into());
    update.apply(tx).unwrap().commit(lake.catalog()).await.unwrap();
    let disabled = lake.delete_old_metadata(TableKind::Raw, &settings.s3, false).await.unwrap();
    assert!(!disabled.enabled && disabled.deleted.is_empty(), "{disabled:?}");

    let declared = lake.declare_missing_properties(TableKind::Raw).await.unwrap();
    assert_eq!(declared, vec!["write.metadata.delete-after-commit.enabled".to_string()]);
    assert!(lake.declare_missing_properties(TableKind::Raw).await.unwrap().is_empty(), "declared twice");
    // An operator's value stays: a short log, so that files fall out of it.
    let table = lake.table(TableKind::Raw).await.unwrap();
    lake.set_properties(&table, &[("write.metadata.previous-versions-max".into(), "2".into())]).await.unwrap();
    assert!(lake.declare_missing_properties(TableKind::Raw).await.unwrap().is_empty());
    for batch in 0..5 {
        append_batch(&lake, batch).await.unwrap();
    }
    let all = metadata_files(&location);
    let table = lake.table(TableKind::Raw).await.unwrap();
    assert_eq!(table.metadata().properties()["write.metadata.previous-versions-max"], "2");
    assert_eq!(table.metadata().metadata_log().len(), 2);

    let dry = lake.delete_old_metadata(TableKind::Raw, &settings.s3, true).await.unwrap();
    assert_eq!(dry.retained, 3, "{dry:?}");
    assert_eq!(dry.deleted.len(), all.len() - 3, "{dry:?} of {all:?}");
    assert_eq!(metadata_files(&location), all, "a dry run deleted");

    let report = lake.delete_old_metadata(TableKind::Raw, &settings.s3, false).await.unwrap();
    assert_eq!(report.deleted, dry.deleted);
    let left = metadata_files(&location);
    assert_eq!(left.len(), 3, "{left:?}");
    // What is left is the newest three: the current metadata and its log.
    assert_eq!(left, all[all.len() - 3..].to_vec());
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 50);
}
