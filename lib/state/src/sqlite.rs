//! The embedded accumulator store: one SQLite file, same semantics as the DynamoDB adapter.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use healthlake_core::time::{from_micros, to_micros};
use healthlake_core::{Window, WindowKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};

use crate::{
    AccumulatorItem, AccumulatorKey, AccumulatorStore, AccumulatorUpdate, MergeReport, PartitionOffset,
    PartitionProgress, StoreError,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS accumulators (
    user_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    window_kind TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end_micros INTEGER NOT NULL,
    state TEXT NOT NULL,
    fences TEXT NOT NULL,
    version INTEGER NOT NULL,
    emitted_version INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    expires_at_micros INTEGER,
    PRIMARY KEY (user_id, data_type, window_kind, window_start)
);
CREATE INDEX IF NOT EXISTS accumulators_by_window
    ON accumulators (window_kind, closed, window_end_micros);
CREATE TABLE IF NOT EXISTS partition_progress (
    partition_key TEXT PRIMARY KEY,
    max_event_micros INTEGER NOT NULL,
    updated_at_micros INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partition_offsets (
    partition_key TEXT PRIMARY KEY,
    received_through INTEGER,
    applied_through INTEGER
);
CREATE TABLE IF NOT EXISTS close_markers (
    window_kind TEXT PRIMARY KEY,
    closed_through_micros INTEGER NOT NULL
);
"#;

/// Keys read per statement (4 parameters each; SQLite allows 32,766 since 3.32).
const KEYS_PER_READ: usize = 500;
/// Items written per statement (8 parameters each).
const ITEMS_PER_WRITE: usize = 250;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (and creates) the store in `dir/accumulators.sqlite`.
    pub async fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        Self::open(&dir.join("accumulators.sqlite")).await
    }

    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        // Stores made before emission tracking lack the column; every item then counts as
        // changed since emitted, which re-emits it once (an idempotent upsert).
        let has_emitted: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('accumulators') WHERE name = 'emitted_version'")
                .fetch_one(&pool)
                .await?;
        if has_emitted == 0 {
            sqlx::raw_sql("ALTER TABLE accumulators ADD COLUMN emitted_version INTEGER NOT NULL DEFAULT 0")
                .execute(&pool)
                .await?;
        }
        Ok(Self { pool })
    }

    /// Raises one offset column of `partition_offsets` to each given offset (never lowers it).
    async fn raise_offsets(&self, column: &'static str, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Self::raise_offsets_in(&mut tx, column, offsets).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn raise_offsets_in(
        conn: &mut SqliteConnection,
        column: &'static str,
        offsets: &[PartitionOffset],
    ) -> Result<(), StoreError> {
        for o in offsets {
            sqlx::query(&format!(
                "INSERT INTO partition_offsets (partition_key, {column}) VALUES (?, ?)
                 ON CONFLICT (partition_key) DO UPDATE SET {column} = MAX(COALESCE({column}, excluded.{column}), excluded.{column})"
            ))
            .bind(&o.partition)
            .bind(o.offset)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn advance_watermarks_in(
        conn: &mut SqliteConnection,
        observations: &[PartitionProgress],
    ) -> Result<(), StoreError> {
        for p in observations {
            sqlx::query(
                "INSERT INTO partition_progress (partition_key, max_event_micros, updated_at_micros) VALUES (?, ?, ?)
                 ON CONFLICT (partition_key) DO UPDATE SET
                   max_event_micros = MAX(max_event_micros, excluded.max_event_micros),
                   updated_at_micros = MAX(updated_at_micros, excluded.updated_at_micros)",
            )
            .bind(&p.partition)
            .bind(to_micros(p.max_event_time))
            .bind(to_micros(p.updated_at))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn load(conn: &mut SqliteConnection, key: &AccumulatorKey) -> Result<Option<AccumulatorItem>, StoreError> {
        let row = sqlx::query(
            "SELECT state, fences, version, emitted_version, closed FROM accumulators
             WHERE user_id = ? AND data_type = ? AND window_kind = ? AND window_start = ?",
        )
        .bind(&key.user_id)
        .bind(&key.data_type)
        .bind(key.window.kind.as_str())
        .bind(key.window.start_date.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| item_from_row(key.clone(), &row)).transpose()
    }

    async fn close_marker(conn: &mut SqliteConnection, kind: WindowKind) -> Result<Option<DateTime<Utc>>, StoreError> {
        let marker: Option<i64> =
            sqlx::query_scalar("SELECT closed_through_micros FROM close_markers WHERE window_kind = ?")
                .bind(kind.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        Ok(marker.map(from_micros))
    }

    /// The items of `keys` that exist, read in a few statements (row values `IN (VALUES ...)`).
    async fn load_many(
        conn: &mut SqliteConnection,
        keys: &[&AccumulatorKey],
    ) -> Result<HashMap<AccumulatorKey, AccumulatorItem>, StoreError> {
        let mut items = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_READ) {
            let by_columns: HashMap<(&str, &str, &str, String), &AccumulatorKey> = chunk
                .iter()
                .map(|k| {
                    (
                        (
                            k.user_id.as_str(),
                            k.data_type.as_str(),
                            k.window.kind.as_str(),
                            k.window.start_date.to_string(),
                        ),
                        *k,
                    )
                })
                .collect();
            let sql = format!(
                "SELECT user_id, data_type, window_kind, window_start, state, fences, version, emitted_version, closed
                   FROM accumulators
                  WHERE (user_id, data_type, window_kind, window_start) IN (VALUES {})",
                vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for key in chunk {
                query = query
                    .bind(&key.user_id)
                    .bind(&key.data_type)
                    .bind(key.window.kind.as_str())
                    .bind(key.window.start_date.to_string());
            }
            for row in query.fetch_all(&mut *conn).await? {
                let columns: (String, String, String, String) = (
                    row.try_get("user_id")?,
                    row.try_get("data_type")?,
                    row.try_get("window_kind")?,
                    row.try_get("window_start")?,
                );
                let lookup = (columns.0.as_str(), columns.1.as_str(), columns.2.as_str(), columns.3.clone());
                if let Some(key) = by_columns.get(&lookup) {
                    items.insert((*key).clone(), item_from_row((*key).clone(), &row)?);
                }
            }
        }
        Ok(items)
    }

    /// Writes merged items in a few statements: new ones inserted at version 1, existing ones
    /// updated to the version after the one read, only if it is still the one read and open.
    async fn write_many(conn: &mut SqliteConnection, writes: &[Write]) -> Result<(), StoreError> {
        for chunk in writes.chunks(ITEMS_PER_WRITE) {
            let sql = format!(
                "INSERT INTO accumulators (user_id, data_type, window_kind, window_start, window_end_micros,
                    state, fences, version, closed)
                 VALUES {}
                 ON CONFLICT (user_id, data_type, window_kind, window_start) DO UPDATE SET
                    state = excluded.state, fences = excluded.fences, version = excluded.version
                 WHERE accumulators.version = excluded.version - 1 AND accumulators.closed = 0",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, 0)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for write in chunk {
                let key = &write.item.key;
                query = query
                    .bind(&key.user_id)
                    .bind(&key.data_type)
                    .bind(key.window.kind.as_str())
                    .bind(key.window.start_date.to_string())
                    .bind(to_micros(key.window.end()))
                    .bind(serde_json::to_string(&write.item.state).expect("state serializes"))
                    .bind(serde_json::to_string(&write.item.fences).expect("fences serialize"))
                    .bind(write.version);
            }
            let written = query.execute(&mut *conn).await?.rows_affected();
            if written != chunk.len() as u64 {
                // The transaction holds the write lock, so nothing can have moved an item read
                // in it; if one did, the batch fails and is redelivered rather than guess.
                return Err(StoreError::ConflictRetriesExhausted {
                    key: format!("{} of {} items", chunk.len() as u64 - written, chunk.len()),
                    attempts: 1,
                });
            }
        }
        Ok(())
    }
}

/// A merged item to write, at the version it will have.
struct Write {
    item: AccumulatorItem,
    version: i64,
}

fn item_from_row(key: AccumulatorKey, row: &sqlx::sqlite::SqliteRow) -> Result<AccumulatorItem, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { key: key.to_string(), reason };
    let state: String = row.try_get("state")?;
    let fences: String = row.try_get("fences")?;
    Ok(AccumulatorItem {
        state: serde_json::from_str(&state).map_err(|e| corrupt(e.to_string()))?,
        fences: serde_json::from_str(&fences).map_err(|e| corrupt(e.to_string()))?,
        version: row.try_get("version")?,
        emitted_version: row.try_get("emitted_version")?,
        closed: row.try_get::<i64, _>("closed")? != 0,
        key,
    })
}

#[async_trait]
impl AccumulatorStore for SqliteStore {
    async fn merge(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError> {
        let mut report = MergeReport::default();
        if updates.is_empty() {
            return Ok(report);
        }
        // One immediate transaction: the close markers read here cannot move until it commits,
        // which is the embedded equivalent of DynamoDB's ConditionCheck on the marker item. It
        // holds the write lock, so the items read stay as read: the batch's items are read in a
        // few statements, merged in memory and written in a few more.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut markers = BTreeMap::new();
        for kind in WindowKind::ALL {
            markers.insert(kind, Self::close_marker(&mut tx, kind).await?);
        }
        let keys: Vec<&AccumulatorKey> = updates.iter().map(|u| &u.key).collect();
        let stored = Self::load_many(&mut tx, &keys).await?;
        // Merged so far in this batch, with the version read (a key twice in one batch merges
        // on top of its first merge and is written once).
        let mut merged: BTreeMap<AccumulatorKey, (AccumulatorItem, i64)> = BTreeMap::new();
        for update in &updates {
            let key = &update.key;
            let current = merged.get(key).map(|(item, _)| item).or_else(|| stored.get(key));
            let closed_by_marker =
                markers.get(&key.window.kind).copied().flatten().is_some_and(|m| key.window.end() <= m);
            let closed = closed_by_marker || current.is_some_and(|i| i.closed);
            let step = update.apply_to(current, closed);
            report.late.extend(step.late);
            report.overflowing.extend(step.overflowing);
            if !step.changed {
                continue;
            }
            report.samples_applied += step.samples_applied;
            let read_version = stored.get(key).map_or(0, |item| item.version);
            merged.insert(key.clone(), (step.item, read_version));
        }
        let writes: Vec<Write> = merged.into_values().map(|(item, read)| Write { item, version: read + 1 }).collect();
        Self::write_many(&mut tx, &writes).await?;
        report.items_written = writes.len();
        tx.commit().await?;
        Ok(report)
    }

    async fn advance_watermarks(&self, observations: &[PartitionProgress]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Self::advance_watermarks_in(&mut tx, observations).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn partition_progress(&self) -> Result<Vec<PartitionProgress>, StoreError> {
        // Both sides of the outer join: a partition may have progress and no offsets (written
        // before offsets were kept) or offsets and no progress (its first batch failed).
        let rows = sqlx::query(
            "SELECT p.partition_key AS partition_key, p.max_event_micros, p.updated_at_micros,
                    o.received_through, o.applied_through
               FROM partition_progress p LEFT JOIN partition_offsets o USING (partition_key)
             UNION ALL
             SELECT o.partition_key, NULL, NULL, o.received_through, o.applied_through
               FROM partition_offsets o
              WHERE o.partition_key NOT IN (SELECT partition_key FROM partition_progress)
             ORDER BY partition_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let micros = |column: &str| -> Result<DateTime<Utc>, sqlx::Error> {
                    Ok(r.try_get::<Option<i64>, _>(column)?.map(from_micros).unwrap_or(DateTime::UNIX_EPOCH))
                };
                let received: Option<i64> = r.try_get("received_through")?;
                let applied: Option<i64> = r.try_get("applied_through")?;
                Ok(PartitionProgress {
                    partition: r.try_get("partition_key")?,
                    max_event_time: micros("max_event_micros")?,
                    updated_at: micros("updated_at_micros")?,
                    pending: received > applied,
                })
            })
            .collect()
    }

    async fn note_received(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        self.raise_offsets("received_through", offsets).await
    }

    async fn note_applied(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        self.raise_offsets("applied_through", offsets).await
    }

    /// Watermarks and applied offsets in one transaction: one durable commit.
    async fn finish_batch(
        &self,
        observations: &[PartitionProgress],
        applied: &[PartitionOffset],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Self::advance_watermarks_in(&mut tx, observations).await?;
        Self::raise_offsets_in(&mut tx, "applied_through", applied).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn advance_close_marker(
        &self,
        kind: WindowKind,
        closed_through: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO close_markers (window_kind, closed_through_micros) VALUES (?, ?)
             ON CONFLICT (window_kind) DO UPDATE SET
               closed_through_micros = MAX(closed_through_micros, excluded.closed_through_micros)",
        )
        .bind(kind.as_str())
        .bind(to_micros(closed_through))
        .execute(&mut *tx)
        .await?;
        let marker = Self::close_marker(&mut tx, kind).await?;
        tx.commit().await?;
        Ok(marker)
    }

    async fn close_marker(&self, kind: WindowKind) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(Self::close_marker(&mut conn, kind).await?.filter(|m| *m > DateTime::UNIX_EPOCH))
    }

    async fn open_keys(
        &self,
        kind: WindowKind,
        end_at_or_before: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, data_type, window_start FROM accumulators
             WHERE window_kind = ? AND closed = 0 AND window_end_micros <= ?
             ORDER BY window_start, user_id, data_type",
        )
        .bind(kind.as_str())
        .bind(to_micros(end_at_or_before))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let start: String = row.try_get("window_start")?;
                let start_date = start.parse().map_err(|e: chrono::ParseError| StoreError::Corrupt {
                    key: start.clone(),
                    reason: e.to_string(),
                })?;
                Ok(AccumulatorKey {
                    user_id: row.try_get("user_id")?,
                    data_type: row.try_get("data_type")?,
                    window: Window { kind, start_date },
                })
            })
            .collect()
    }

    async fn read_items(&self, keys: &[AccumulatorKey]) -> Result<Vec<AccumulatorItem>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let keys: Vec<&AccumulatorKey> = keys.iter().collect();
        let mut items: Vec<AccumulatorItem> = Self::load_many(&mut conn, &keys).await?.into_values().collect();
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn mark_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (key, version) in emitted {
            sqlx::query(
                "UPDATE accumulators SET emitted_version = ?
                 WHERE user_id = ? AND data_type = ? AND window_kind = ? AND window_start = ?
                   AND emitted_version < ?",
            )
            .bind(version)
            .bind(&key.user_id)
            .bind(&key.data_type)
            .bind(key.window.kind.as_str())
            .bind(key.window.start_date.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_closed(
        &self,
        closes: &[(AccumulatorKey, i64)],
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut moved = Vec::new();
        for (key, version) in closes {
            let closed = sqlx::query(
                "UPDATE accumulators SET closed = 1, version = version + 1, expires_at_micros = ?
                 WHERE user_id = ? AND data_type = ? AND window_kind = ? AND window_start = ?
                   AND version = ? AND closed = 0",
            )
            .bind(to_micros(expires_at))
            .bind(&key.user_id)
            .bind(&key.data_type)
            .bind(key.window.kind.as_str())
            .bind(key.window.start_date.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if closed == 0 && Self::load(&mut tx, key).await?.is_some_and(|item| !item.closed) {
                moved.push(key.clone());
            }
        }
        // Closed state past its TTL is removed, as DynamoDB's TTL does for the real store.
        sqlx::query("DELETE FROM accumulators WHERE closed = 1 AND expires_at_micros < ?")
            .bind(to_micros(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(moved)
    }
}
