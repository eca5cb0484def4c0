//! Window progress from the state store: the watermark finalize would compute now, each kind's
//! close marker, its lag and the windows still open.

use chrono::{DateTime, Utc};
use healthlake_core::WindowKind;
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::finalize::{unseen_partitions, watermark};
use healthlake_state::AccumulatorStore;

use crate::Gauge;

/// Reads only: the partitions not seen yet (HEALTHLAKE_TOPIC_PARTITIONS) hold the watermark
/// here as finalize's would, without writing their placeholders.
pub(crate) async fn read(
    store: &dyn AccumulatorStore,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Gauge>, String> {
    let mut progress = store.partition_progress().await.map_err(|e| format!("partition progress: {e}"))?;
    let unseen = unseen_partitions(&progress, settings, now);
    progress.extend(unseen);
    let wm = watermark(&progress, now, settings.max_out_of_orderness, settings.partition_idle_timeout);
    let mut gauges = Vec::new();
    for kind in WindowKind::ALL {
        let label = |metric, value| Gauge::new(metric, value).label("window_type", kind.as_str());
        if let Some(wm) = wm {
            gauges.push(label("window_watermark_timestamp_seconds", wm.timestamp_millis() as f64 / 1e3));
            gauges.push(label("finalize_lag_seconds", (now - wm).num_milliseconds() as f64 / 1e3));
        }
        let marker = store.close_marker(kind).await.map_err(|e| format!("{kind} close marker: {e}"))?;
        if let Some(marker) = marker {
            gauges.push(label("window_closed_through_timestamp_seconds", marker.timestamp_millis() as f64 / 1e3));
        }
        let open =
            store.open_keys(kind, DateTime::<Utc>::MAX_UTC).await.map_err(|e| format!("{kind} open windows: {e}"))?;
        gauges.push(label("open_windows", open.len() as f64));
    }
    Ok(gauges)
}
