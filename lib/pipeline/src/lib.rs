//! The handlers of healthlake over their ports, and what they need at start: settings from the
//! environment and the schema sources. The Lambda binaries and the `healthlake` command are thin
//! wrappers around [`ingest::IngestHandler`] and [`finalize::FinalizeHandler`].

pub mod app;
pub mod backfill;
pub mod config;
mod decoding;
pub mod demo;
pub mod events;
pub mod finalize;
pub mod ingest;
pub mod maintain;
pub mod metrics;
mod partials;
pub mod replay;
pub mod schema_source;

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Processing time source; tests pin it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}
