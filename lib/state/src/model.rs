use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use healthlake_core::{WelfordState, Window};
use serde::{Deserialize, Serialize};

/// One accumulator: a (user, data type, window).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccumulatorKey {
    pub user_id: String,
    pub data_type: String,
    pub window: Window,
}

impl AccumulatorKey {
    /// `user_id#data_type`: the partition key of DynamoDB items.
    pub fn entity(&self) -> String {
        format!("{}#{}", self.user_id, self.data_type)
    }
}

impl std::fmt::Display for AccumulatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.entity(), self.window.key())
    }
}

/// A sample's place in the input: which Kafka record and which sample of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleRef {
    pub partition: String,
    pub offset: i64,
    pub index: u32,
}

/// The samples of one partition for one accumulator in one batch, pre-combined.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartitionContribution {
    pub first_offset: i64,
    pub last_offset: i64,
    /// All samples of the contribution combined.
    pub combined: WelfordState,
    /// The samples one by one, for the rare regrouped redelivery that straddles a fence.
    pub samples: Vec<(SampleRef, DateTime<Utc>, f64)>,
}

impl PartitionContribution {
    pub fn add(&mut self, sample: SampleRef, ts: DateTime<Utc>, value: f64) {
        if self.samples.is_empty() {
            self.first_offset = sample.offset;
            self.last_offset = sample.offset;
        }
        self.first_offset = self.first_offset.min(sample.offset);
        self.last_offset = self.last_offset.max(sample.offset);
        self.combined.add(ts, value);
        self.samples.push((sample, ts, value));
    }

    /// The part of this contribution above `fence` (everything when there is no fence).
    pub fn above(&self, fence: Option<i64>) -> Option<WelfordState> {
        match fence {
            None => Some(self.combined.clone()),
            Some(f) if f < self.first_offset => Some(self.combined.clone()),
            Some(f) if f >= self.last_offset => None,
            Some(f) => {
                let mut state = WelfordState::default();
                for (r, ts, v) in &self.samples {
                    if r.offset > f {
                        state.add(*ts, *v);
                    }
                }
                Some(state)
            }
        }
    }

    pub fn samples_above(&self, fence: Option<i64>) -> impl Iterator<Item = &SampleRef> {
        self.samples.iter().map(|(r, _, _)| r).filter(move |r| fence.is_none_or(|f| r.offset > f))
    }
}

/// Everything one batch adds to one accumulator, by partition key.
#[derive(Debug, Clone, PartialEq)]
pub struct AccumulatorUpdate {
    pub key: AccumulatorKey,
    /// One per partition key, in key order (merged in that order, so that floating-point
    /// results do not depend on how the batch was put together). A list rather than a map: an
    /// accumulator almost always has one partition in a batch (a user's records share a Kafka
    /// key), and a map's node would hold room for eleven.
    pub contributions: Vec<(String, PartitionContribution)>,
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeReport {
    /// Samples refused because their window was closed: the caller turns them into late rows.
    pub late: Vec<(AccumulatorKey, SampleRef)>,
    /// Samples refused because folding them in would make the window's statistics non-finite:
    /// the caller turns them into error rows. Their window is left as it was.
    pub overflowing: Vec<(AccumulatorKey, SampleRef)>,
    /// Items written.
    pub items_written: usize,
    /// Samples applied (above fences, into open windows).
    pub samples_applied: usize,
    /// Conditional writes that lost a race and were retried.
    pub conflicts_retried: usize,
}

/// A stored accumulator.
#[derive(Debug, Clone, PartialEq)]
pub struct AccumulatorItem {
    pub key: AccumulatorKey,
    pub state: WelfordState,
    /// Per partition key: the highest offset already applied to this item.
    pub fences: BTreeMap<String, i64>,
    pub version: i64,
    /// The version whose statistics finalize last wrote to the aggregate table (0: never).
    /// A window whose `version` moved past it has changed since and is emitted again.
    pub emitted_version: i64,
    pub closed: bool,
}

impl AccumulatorItem {
    /// Whether the aggregate table lacks this item's current statistics.
    pub fn changed_since_emitted(&self) -> bool {
        self.version != self.emitted_version
    }
}

/// How far one topic-partition has got in event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionProgress {
    pub partition: String,
    pub max_event_time: DateTime<Utc>,
    /// Processing time of the last batch that advanced it; idle partitions stop holding the
    /// watermark back.
    pub updated_at: DateTime<Utc>,
    /// Records of this partition were received by a batch that has not been applied (it failed,
    /// or is in flight): the partition holds the watermark however long it has been quiet.
    /// Derived by the store on reading; ignored when writing.
    #[serde(default)]
    pub pending: bool,
}

/// The highest Kafka offset of a partition that a batch carried (see
/// [`crate::AccumulatorStore::note_received`] and [`crate::AccumulatorStore::note_applied`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub partition: String,
    pub offset: i64,
}

/// What merging one update into one item (as read) comes to; shared by every store adapter so
/// that fence and close semantics are the same everywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeStep {
    /// The item to write back (only meaningful when `changed`).
    pub item: AccumulatorItem,
    pub changed: bool,
    pub samples_applied: usize,
    /// Samples above the fences of a closed window.
    pub late: Vec<(AccumulatorKey, SampleRef)>,
    /// Samples above the fences whose merge would leave non-finite statistics.
    pub overflowing: Vec<(AccumulatorKey, SampleRef)>,
}

impl AccumulatorUpdate {
    /// Applies this update to `existing` (None: no item yet). `closed` says whether the window is
    /// closed (item marked closed, or at or below its kind's close marker). Samples at or below a
    /// partition's fence were applied before and are skipped either way.
    pub fn apply_to(&self, existing: Option<&AccumulatorItem>, closed: bool) -> MergeStep {
        let item = existing.cloned().unwrap_or_else(|| AccumulatorItem {
            key: self.key.clone(),
            state: WelfordState::default(),
            fences: BTreeMap::new(),
            version: 0,
            emitted_version: 0,
            closed: false,
        });
        let mut step = MergeStep { item, changed: false, samples_applied: 0, late: vec![], overflowing: vec![] };
        for (partition, contribution) in &self.contributions {
            let fence = step.item.fences.get(partition).copied();
            if closed {
                step.late.extend(contribution.samples_above(fence).map(|r| (self.key.clone(), r.clone())));
                continue;
            }
            if let Some(part) = contribution.above(fence) {
                let mut merged = step.item.state.clone();
                merged.merge(&part);
                if !merged.is_finite() {
                    // The fence stays: a redelivery finds the same state and refuses the same way.
                    step.overflowing.extend(contribution.samples_above(fence).map(|r| (self.key.clone(), r.clone())));
                    continue;
                }
                step.samples_applied += part.count as usize;
                step.item.state = merged;
                step.item.fences.insert(partition.clone(), fence.unwrap_or(i64::MIN).max(contribution.last_offset));
                step.changed = true;
            }
        }
        step
    }
}
