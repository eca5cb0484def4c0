//! One lane per partition, as Lambda's Kafka event source mapping runs them: each partition's
//! records queue in offset order and become batches of that partition only; a partition has at
//! most one batch in flight (so its records are handled in order), and at most `max_in_flight`
//! partitions are in flight at once (`HEALTHLAKE_MAX_CONCURRENCY`). No I/O: the runner feeds
//! records in and takes due batches out.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::batch::{Batch, BatchClosed, BatchLimits, ConsumedRecord, Offer};

#[derive(Debug, Default)]
struct Lane {
    queue: VecDeque<ConsumedRecord>,
    queued_bytes: usize,
    /// When the oldest queued record arrived: the batching window counts from it.
    first_at: Option<Instant>,
    in_flight: bool,
}

/// The partitions' lanes.
#[derive(Debug)]
pub struct Lanes {
    lanes: BTreeMap<i32, Lane>,
    limits: BatchLimits,
    max_in_flight: usize,
}

impl Lanes {
    pub fn new(limits: BatchLimits, max_in_flight: usize) -> Self {
        Self { lanes: BTreeMap::new(), limits, max_in_flight: max_in_flight.max(1) }
    }

    /// Queues a consumed record on its partition's lane.
    pub fn push(&mut self, record: ConsumedRecord, now: Instant) {
        let lane = self.lanes.entry(record.partition).or_default();
        lane.first_at.get_or_insert(now);
        lane.queued_bytes += record.payload_bytes();
        lane.queue.push_back(record);
    }

    /// Records queued on a partition, not yet in a batch.
    pub fn queued(&self, partition: i32) -> usize {
        self.lanes.get(&partition).map_or(0, |lane| lane.queue.len())
    }

    /// The partitions records have come from.
    pub fn partitions(&self) -> Vec<i32> {
        self.lanes.keys().copied().collect()
    }

    pub fn in_flight(&self) -> usize {
        self.lanes.values().filter(|lane| lane.in_flight).count()
    }

    /// Nothing queued and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.lanes.values().all(|lane| lane.queue.is_empty() && !lane.in_flight)
    }

    /// The batches to start now, marked in flight: of the lanes with none in flight, those whose
    /// batch is due (`BatchSize` records, the payload cap, the batching window passed since its
    /// first record, or everything on `flush`), the longest waiting first, as many as the free
    /// concurrency allows.
    pub fn take_due(&mut self, now: Instant, flush: bool) -> Vec<(Batch, BatchClosed)> {
        let free = self.max_in_flight.saturating_sub(self.in_flight());
        let mut due: Vec<(Instant, i32)> = self
            .lanes
            .iter()
            .filter(|(_, lane)| !lane.in_flight && !lane.queue.is_empty())
            .filter(|(_, lane)| flush || self.is_due(lane, now))
            .map(|(partition, lane)| (lane.first_at.unwrap_or(now), *partition))
            .collect();
        due.sort();
        due.into_iter().take(free).map(|(_, partition)| self.start(partition, now, flush)).collect()
    }

    /// The earliest instant a waiting lane's batching window ends (`None`: none is waiting).
    pub fn next_window_end(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter(|lane| !lane.in_flight)
            .filter_map(|lane| lane.first_at)
            .map(|at| at + self.limits.batching_window)
            .min()
    }

    /// The partition's batch is done (succeeded, stored at the destination, or given up on a
    /// stop): its next batch may start.
    pub fn finished(&mut self, partition: i32) {
        if let Some(lane) = self.lanes.get_mut(&partition) {
            lane.in_flight = false;
        }
    }

    fn is_due(&self, lane: &Lane, now: Instant) -> bool {
        lane.queue.len() >= self.limits.batch_size.max(1)
            || lane.queued_bytes + 256 > self.limits.max_payload_bytes
            || lane.first_at.is_some_and(|at| now >= at + self.limits.batching_window)
    }

    /// Cuts the lane's next batch from its queue and marks it in flight.
    fn start(&mut self, partition: i32, now: Instant, flush: bool) -> (Batch, BatchClosed) {
        let limits = self.limits;
        let lane = self.lanes.get_mut(&partition).expect("a due lane exists");
        let mut batch = Batch::new();
        let mut closed = if flush { BatchClosed::Flushed } else { BatchClosed::WindowElapsed };
        while let Some(record) = lane.queue.pop_front() {
            let bytes = record.payload_bytes();
            match batch.offer(record, &limits) {
                Offer::Taken => lane.queued_bytes -= bytes,
                Offer::TakenFull => {
                    lane.queued_bytes -= bytes;
                    closed = BatchClosed::Full;
                    break;
                }
                Offer::Refused(record) => {
                    lane.queue.push_front(*record);
                    closed = BatchClosed::PayloadCap;
                    break;
                }
            }
        }
        // What stays queued waits for the next batch, whose window starts now.
        lane.first_at = (!lane.queue.is_empty()).then_some(now);
        lane.in_flight = true;
        (batch, closed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(partition: i32, offset: i64) -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition,
            offset,
            timestamp: chrono::Utc::now(),
            key: None,
            value: vec![0; 10],
        }
    }

    fn limits(batch_size: usize) -> BatchLimits {
        BatchLimits { batch_size, batching_window: Duration::from_secs(1), ..BatchLimits::default() }
    }

    fn offsets(batch: &Batch) -> Vec<(i32, i64)> {
        batch.records().iter().map(|r| (r.partition, r.offset)).collect()
    }

    #[test]
    fn each_partition_has_one_batch_in_flight_and_keeps_its_order() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(limits(2), 8);
        for offset in 0..5 {
            lanes.push(record(0, offset), t0);
        }
        lanes.push(record(1, 0), t0);
        // Partition 0 is full; partition 1 waits for its window.
        let due = lanes.take_due(t0, false);
        assert_eq!(due.len(), 1);
        assert_eq!((offsets(&due[0].0), due[0].1), (vec![(0, 0), (0, 1)], BatchClosed::Full));
        // Partition 0 has a full batch queued but one in flight: nothing more from it.
        assert!(lanes.take_due(t0, false).is_empty());
        // Partition 1's window passes.
        let later = t0 + Duration::from_secs(1);
        let due = lanes.take_due(later, false);
        assert_eq!((offsets(&due[0].0), due[0].1), (vec![(1, 0)], BatchClosed::WindowElapsed));
        assert_eq!(lanes.in_flight(), 2);
        lanes.finished(0);
        let due = lanes.take_due(later, false);
        assert_eq!(offsets(&due[0].0), vec![(0, 2), (0, 3)]);
        lanes.finished(0);
        // The last record of partition 0 goes on a flush; then everything is done.
        let due = lanes.take_due(later, true);
        assert_eq!((offsets(&due[0].0), due[0].1), (vec![(0, 4)], BatchClosed::Flushed));
        lanes.finished(0);
        lanes.finished(1);
        assert!(lanes.is_idle());
    }

    #[test]
    fn concurrency_is_capped_and_the_longest_waiting_go_first() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(limits(1), 2);
        for partition in [3, 1, 2] {
            lanes.push(record(partition, 0), t0 + Duration::from_millis(partition as u64));
        }
        let due = lanes.take_due(t0 + Duration::from_millis(5), false);
        let started: Vec<i32> = due.iter().map(|(b, _)| b.records()[0].partition).collect();
        assert_eq!(started, vec![1, 2]);
        assert!(lanes.take_due(t0 + Duration::from_millis(5), false).is_empty(), "two in flight at most");
        lanes.finished(1);
        let due = lanes.take_due(t0 + Duration::from_millis(5), false);
        assert_eq!(due[0].0.records()[0].partition, 3);
    }

    #[test]
    fn the_window_of_the_next_batch_starts_when_the_previous_one_is_cut() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(limits(2), 4);
        for offset in 0..3 {
            lanes.push(record(0, offset), t0);
        }
        lanes.take_due(t0, false);
        lanes.finished(0);
        let cut = t0;
        assert_eq!(lanes.next_window_end(), Some(cut + Duration::from_secs(1)));
        assert!(lanes.take_due(cut + Duration::from_millis(999), false).is_empty());
        assert_eq!(lanes.take_due(cut + Duration::from_secs(1), false).len(), 1);
        assert_eq!(lanes.queued(0), 0);
    }
}
