//! Mergeable window statistics: Welford's online update and Chan et al.'s parallel merge.
//!
//! A [`WelfordState`] can be built from any subset of a window's samples and merged with any other
//! in any grouping and order; the result equals a two-pass computation over all samples within
//! floating-point tolerance. That is what lets partition batches, retries and regroupings combine
//! into one accumulator.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A value at an event time; the ordering key of first/last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimedValue {
    /// Event time in microseconds since the epoch.
    pub ts: i64,
    #[serde(with = "exact_f64")]
    pub value: f64,
}

impl TimedValue {
    /// Orders by time, then by value, so that ties resolve the same whatever the merge order.
    fn cmp_key(&self, other: &Self) -> Ordering {
        self.ts.cmp(&other.ts).then(self.value.total_cmp(&other.value))
    }
}

/// Sum and count of one UTC day, to derive the average of daily averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DaySum {
    pub count: u64,
    #[serde(with = "exact_f64")]
    pub sum: f64,
}

/// Partial aggregate state of one (user, data type, window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
///
/// Serialized with every float as text (see [`exact_f64`]), so stored state reads back bit for
/// bit whatever the value.
pub struct WelfordState {
    pub count: u64,
    #[serde(with = "exact_f64")]
    pub mean: f64,
    /// Sum of squared differences from the mean.
    #[serde(with = "exact_f64")]
    pub m2: f64,
    #[serde(with = "exact_f64")]
    pub min: f64,
    #[serde(with = "exact_f64")]
    pub max: f64,
    #[serde(with = "exact_f64")]
    pub sum: f64,
    pub first: Option<TimedValue>,
    pub last: Option<TimedValue>,
    /// Per-day sums; one entry for a daily window, up to 7 or 31 for weekly and monthly.
    pub days: BTreeMap<NaiveDate, DaySum>,
}

/// The finished statistics of a window, as the aggregate tables store them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AggregateStats {
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub sum: f64,
    pub count: i64,
    /// Population standard deviation (divides by n, like SQL `STDDEV_POP`): a window holds every
    /// measurement of its period, not a sample of them. 0 for a single value.
    pub stddev: f64,
    pub first: f64,
    pub last: f64,
    /// Samples folded into the window; equals `count` (every sample carries one value).
    pub record_count: i64,
    /// Mean of the per-day means (weekly/monthly; equals `avg` for a daily window).
    pub daily_avg_of_avg: f64,
}

impl WelfordState {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Folds one sample in (Welford's update).
    pub fn add(&mut self, ts: DateTime<Utc>, value: f64) {
        let single = WelfordState::single(ts, value);
        self.merge(&single);
    }

    fn single(ts: DateTime<Utc>, value: f64) -> Self {
        let at = TimedValue { ts: ts.timestamp_micros(), value };
        let mut days = BTreeMap::new();
        days.insert(ts.date_naive(), DaySum { count: 1, sum: value });
        WelfordState {
            count: 1,
            mean: value,
            m2: 0.0,
            min: value,
            max: value,
            sum: value,
            first: Some(at),
            last: Some(at),
            days,
        }
    }

    /// Merges another partial state into this one (Chan et al.).
    pub fn merge(&mut self, other: &WelfordState) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.first = pick(self.first, other.first, Ordering::Less);
        self.last = pick(self.last, other.last, Ordering::Greater);
        for (day, s) in &other.days {
            let entry = self.days.entry(*day).or_default();
            entry.count += s.count;
            entry.sum += s.sum;
        }
    }

    /// Whether every statistic is a finite number. A merge whose result is not is refused: an
    /// infinite sum or NaN mean would poison the window for good.
    pub fn is_finite(&self) -> bool {
        [self.mean, self.m2, self.min, self.max, self.sum].iter().all(|v| v.is_finite())
            && self.days.values().all(|d| d.sum.is_finite())
    }

    /// The finished statistics, or `None` for an empty state.
    pub fn stats(&self) -> Option<AggregateStats> {
        if self.count == 0 {
            return None;
        }
        let daily_means: Vec<f64> =
            self.days.values().filter(|d| d.count > 0).map(|d| d.sum / d.count as f64).collect();
        let daily_avg_of_avg =
            if daily_means.is_empty() { self.mean } else { daily_means.iter().sum::<f64>() / daily_means.len() as f64 };
        Some(AggregateStats {
            min: self.min,
            max: self.max,
            avg: self.mean,
            sum: self.sum,
            count: self.count as i64,
            stddev: (self.m2.max(0.0) / self.count as f64).sqrt(),
            first: self.first.map(|f| f.value).unwrap_or(self.mean),
            last: self.last.map(|l| l.value).unwrap_or(self.mean),
            record_count: self.count as i64,
            daily_avg_of_avg,
        })
    }
}

/// Floats as JSON strings in Rust's shortest round-trip notation (`"72.5"`, `"1e300"`, `"NaN"`,
/// `"inf"`): JSON numbers cannot carry NaN or infinities (serde_json writes `null` and cannot read
/// it back), and serde_json's default number parser is not exact in every last bit. Plain JSON
/// numbers, as state written before this format holds them, still read.
pub mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{value:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Number(f64),
            Text(String),
        }
        match Stored::deserialize(deserializer)? {
            Stored::Number(v) => Ok(v),
            Stored::Text(text) => text.parse().map_err(|_| de::Error::custom(format!("not a float: {text:?}"))),
        }
    }
}

fn pick(a: Option<TimedValue>, b: Option<TimedValue>, want: Ordering) -> Option<TimedValue> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.cmp_key(&a) == want { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Two-pass reference computation over all samples, for tests and for backfill checks.
pub fn two_pass(samples: &[(DateTime<Utc>, f64)]) -> Option<AggregateStats> {
    if samples.is_empty() {
        return None;
    }
    let n = samples.len() as f64;
    let sum: f64 = samples.iter().map(|(_, v)| v).sum();
    let mean = sum / n;
    let var = samples.iter().map(|(_, v)| (v - mean).powi(2)).sum::<f64>() / n;
    let by_key = |a: &&(DateTime<Utc>, f64), b: &&(DateTime<Utc>, f64)| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1));
    let first = samples.iter().min_by(by_key).map(|s| s.1).unwrap_or(mean);
    let last = samples.iter().max_by(by_key).map(|s| s.1).unwrap_or(mean);
    let mut days: BTreeMap<NaiveDate, (f64, f64)> = BTreeMap::new();
    for (ts, v) in samples {
        let d = days.entry(ts.date_naive()).or_default();
        d.0 += v;
        d.1 += 1.0;
    }
    let daily_avg_of_avg = days.values().map(|(s, c)| s / c).sum::<f64>() / days.len() as f64;
    Some(AggregateStats {
        min: samples.iter().map(|s| s.1).fold(f64::INFINITY, f64::min),
        max: samples.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max),
        avg: mean,
        sum,
        count: samples.len() as i64,
        stddev: var.sqrt(),
        first,
        last,
        record_count: samples.len() as i64,
        daily_avg_of_avg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn assert_stats_close(a: &AggregateStats, b: &AggregateStats) {
        assert!(close(a.min, b.min) && close(a.max, b.max), "{a:?} vs {b:?}");
        assert!(close(a.avg, b.avg) && close(a.sum, b.sum), "{a:?} vs {b:?}");
        assert!(close(a.stddev, b.stddev), "stddev {a:?} vs {b:?}");
        assert!(close(a.daily_avg_of_avg, b.daily_avg_of_avg), "{a:?} vs {b:?}");
        assert_eq!(a.count, b.count);
        assert_eq!(a.record_count, b.record_count);
        assert_eq!(a.first, b.first);
        assert_eq!(a.last, b.last);
    }

    fn samples_strategy() -> impl Strategy<Value = Vec<(DateTime<Utc>, f64)>> {
        // Event times over ~3 weeks with many ties, values across a health-like range.
        prop::collection::vec((0i64..2_000_000i64, 0.0f64..250_000.0f64), 1..120).prop_map(|v| {
            v.into_iter()
                .map(|(secs, value)| {
                    let ts = DateTime::from_timestamp(1_731_000_000 + secs - secs % 7, 0).unwrap();
                    (ts, (value * 100.0).round() / 100.0)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn merging_any_grouping_in_any_order_equals_two_pass(
            samples in samples_strategy(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            order_seed in any::<u64>(),
        ) {
            // Split into chunks at arbitrary cut points...
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(samples.len() + 1)).collect();
            points.push(0);
            points.push(samples.len());
            points.sort_unstable();
            points.dedup();
            let mut partials: Vec<WelfordState> = points
                .windows(2)
                .map(|w| {
                    let mut s = WelfordState::default();
                    for (ts, v) in &samples[w[0]..w[1]] {
                        s.add(*ts, *v);
                    }
                    s
                })
                .collect();
            // ...then merge them in a shuffled order, some as a tree and some as a chain.
            let mut seed = order_seed;
            for i in (1..partials.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                partials.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let mid = partials.len() / 2;
            let mut left = WelfordState::default();
            for p in &partials[..mid] { left.merge(p); }
            let mut right = WelfordState::default();
            for p in partials[mid..].iter().rev() { right.merge(p); }
            right.merge(&left);

            let expected = two_pass(&samples).unwrap();
            assert_stats_close(&right.stats().unwrap(), &expected);
        }
    }

    proptest! {
        #[test]
        fn stored_state_round_trips_every_f64(bits in prop::collection::vec(any::<u64>(), 6)) {
            let f = |i: usize| f64::from_bits(bits[i]);
            let ts = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
            let mut days = BTreeMap::new();
            days.insert(ts.date_naive(), DaySum { count: 3, sum: f(5) });
            let state = WelfordState {
                count: 3,
                mean: f(0),
                m2: f(1),
                min: f(2),
                max: f(3),
                sum: f(4),
                first: Some(TimedValue { ts: 1, value: f(5) }),
                last: None,
                days,
            };
            let text = serde_json::to_string(&state).unwrap();
            let back: WelfordState = serde_json::from_str(&text).unwrap();
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            prop_assert!(same(back.mean, state.mean) && same(back.m2, state.m2), "{text}");
            prop_assert!(same(back.min, state.min) && same(back.max, state.max) && same(back.sum, state.sum), "{text}");
            prop_assert!(same(back.first.unwrap().value, f(5)) && same(back.days[&ts.date_naive()].sum, f(5)), "{text}");
        }
    }

    #[test]
    fn state_written_as_plain_json_numbers_still_reads() {
        let old = r#"{"count":1,"mean":72.5,"m2":0.0,"min":72.5,"max":72.5,"sum":72.5,
            "first":{"ts":1,"value":72.5},"last":{"ts":1,"value":72.5},"days":{"2025-11-17":{"count":1,"sum":72.5}}}"#;
        let state: WelfordState = serde_json::from_str(old).unwrap();
        assert_eq!((state.count, state.mean, state.last.unwrap().value), (1, 72.5, 72.5));
    }

    #[test]
    fn a_sentinel_value_overflows_the_state_which_says_so() {
        let ts = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut s = WelfordState::default();
        s.add(ts, f64::MAX);
        assert!(s.is_finite());
        s.add(ts, f64::MAX);
        assert!(!s.is_finite(), "sum of two DBL_MAX overflows: {s:?}");
    }

    #[test]
    fn single_value_has_zero_stddev_and_is_first_and_last() {
        let mut s = WelfordState::default();
        let ts = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        s.add(ts, 72.0);
        let stats = s.stats().unwrap();
        assert_eq!(stats.stddev, 0.0);
        assert_eq!((stats.first, stats.last, stats.count), (72.0, 72.0, 1));
    }

    #[test]
    fn population_stddev_is_documented_choice() {
        let mut s = WelfordState::default();
        let ts = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for v in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            s.add(ts, v);
        }
        // Classic example: population stddev 2 (sample stddev would be ~2.138).
        assert!(close(s.stats().unwrap().stddev, 2.0));
    }

    #[test]
    fn daily_avg_of_avg_weights_days_equally() {
        let mut s = WelfordState::default();
        let d1 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let d2 = d1 + chrono::Duration::days(1);
        s.add(d1, 10.0);
        s.add(d1, 20.0);
        s.add(d1, 30.0);
        s.add(d2, 100.0);
        let stats = s.stats().unwrap();
        assert!(close(stats.avg, 40.0));
        assert!(close(stats.daily_avg_of_avg, 60.0));
        assert_eq!(stats.last, 100.0);
        assert_eq!(stats.first, 10.0);
    }
}
