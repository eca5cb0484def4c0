//! Tumbling event-time windows in UTC: calendar days, ISO weeks, calendar months.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Daily,
    Weekly,
    Monthly,
}

impl WindowKind {
    pub const ALL: [WindowKind; 3] = [WindowKind::Daily, WindowKind::Weekly, WindowKind::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Daily => "daily",
            WindowKind::Weekly => "weekly",
            WindowKind::Monthly => "monthly",
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown window kind {0:?}: expected daily, weekly or monthly")]
pub struct UnknownWindowKind(pub String);

impl FromStr for WindowKind {
    type Err = UnknownWindowKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "daily" => Ok(WindowKind::Daily),
            "weekly" => Ok(WindowKind::Weekly),
            "monthly" => Ok(WindowKind::Monthly),
            _ => Err(UnknownWindowKind(s.to_string())),
        }
    }
}

/// One window `[start, end)`, identified by its kind and first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub kind: WindowKind,
    /// The first day of the window (a Monday for weekly, the 1st for monthly).
    pub start_date: NaiveDate,
}

impl Window {
    /// The window of `kind` that contains the event time `ts`.
    pub fn containing(kind: WindowKind, ts: DateTime<Utc>) -> Self {
        let day = ts.date_naive();
        let start_date = match kind {
            WindowKind::Daily => day,
            WindowKind::Weekly => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            WindowKind::Monthly => day.with_day(1).expect("day 1 exists"),
        };
        Self { kind, start_date }
    }

    /// Parses the window key written by [`Window::key`].
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, date) = key.split_once('#')?;
        Some(Self { kind: kind.parse().ok()?, start_date: date.parse().ok()? })
    }

    /// `kind#YYYY-MM-DD`: the window part of accumulator keys.
    pub fn key(&self) -> String {
        format!("{}#{}", self.kind, self.start_date)
    }

    /// The day after the last day of the window.
    pub fn end_date(&self) -> NaiveDate {
        match self.kind {
            WindowKind::Daily => self.start_date + Days::new(1),
            WindowKind::Weekly => self.start_date + Days::new(7),
            WindowKind::Monthly => self.start_date + Months::new(1),
        }
    }

    /// The last day inside the window (Sunday for weeks, the month's last day).
    pub fn last_date(&self) -> NaiveDate {
        self.end_date() - Days::new(1)
    }

    pub fn start(&self) -> DateTime<Utc> {
        midnight(self.start_date)
    }

    /// Exclusive end.
    pub fn end(&self) -> DateTime<Utc> {
        midnight(self.end_date())
    }

    /// When the window stops accepting records: its end plus the allowed lateness.
    pub fn closes_at(&self, allowed_lateness: Duration) -> DateTime<Utc> {
        self.end() + allowed_lateness
    }

    /// The ISO week-year and week number (2024-12-30 is 2025-W01).
    pub fn iso_year_week(&self) -> (i32, u32) {
        let iso = self.start_date.iso_week();
        (iso.year(), iso.week())
    }

    /// The calendar year and month (1-12) of the window start.
    pub fn year_month(&self) -> (i32, u32) {
        (self.start_date.year(), self.start_date.month())
    }

    /// Whether the window begins on the weekday its kind requires.
    pub fn is_aligned(&self) -> bool {
        match self.kind {
            WindowKind::Daily => true,
            WindowKind::Weekly => self.start_date.weekday() == Weekday::Mon,
            WindowKind::Monthly => self.start_date.day() == 1,
        }
    }
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        crate::time::parse_instant(text).unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn daily_window_is_the_utc_day() {
        let w = Window::containing(WindowKind::Daily, at("2025-11-17T23:59:59.999Z"));
        assert_eq!(w.start_date, date("2025-11-17"));
        assert_eq!(w.end(), at("2025-11-18T00:00:00Z"));
        // An offset that is still the 17th locally is already the 18th in UTC.
        let w = Window::containing(WindowKind::Daily, at("2025-11-17T23:30:00-01:00"));
        assert_eq!(w.start_date, date("2025-11-18"));
    }

    #[test]
    fn iso_week_year_differs_from_calendar_year_at_edges() {
        // Monday 2024-12-30 starts ISO week 1 of 2025.
        let w = Window::containing(WindowKind::Weekly, at("2024-12-31T12:00:00Z"));
        assert_eq!(w.start_date, date("2024-12-30"));
        assert_eq!(w.iso_year_week(), (2025, 1));
        assert_eq!(w.last_date(), date("2025-01-05"));
        // Sunday 2021-01-03 still belongs to 2020-W53.
        let w = Window::containing(WindowKind::Weekly, at("2021-01-03T23:59:59Z"));
        assert_eq!(w.start_date, date("2020-12-28"));
        assert_eq!(w.iso_year_week(), (2020, 53));
        // Monday 00:00 starts a new week.
        let w = Window::containing(WindowKind::Weekly, at("2025-11-17T00:00:00Z"));
        assert_eq!(w.start_date, date("2025-11-17"));
        let w = Window::containing(WindowKind::Weekly, at("2025-11-16T23:59:59Z"));
        assert_eq!(w.start_date, date("2025-11-10"));
        assert!(w.is_aligned());
    }

    #[test]
    fn monthly_windows_are_calendar_months() {
        let w = Window::containing(WindowKind::Monthly, at("2024-02-29T18:00:00Z"));
        assert_eq!(w.start_date, date("2024-02-01"));
        assert_eq!(w.last_date(), date("2024-02-29"));
        assert_eq!(w.end(), at("2024-03-01T00:00:00Z"));
        let w = Window::containing(WindowKind::Monthly, at("2025-12-31T23:59:59Z"));
        assert_eq!(w.end(), at("2026-01-01T00:00:00Z"));
        assert_eq!(w.year_month(), (2025, 12));
        let w = Window::containing(WindowKind::Monthly, at("2025-02-01T00:00:00Z"));
        assert_eq!(w.last_date(), date("2025-02-28"));
    }

    #[test]
    fn keys_round_trip_and_lateness_shifts_closing() {
        let w = Window::containing(WindowKind::Weekly, at("2025-01-01T00:00:00Z"));
        assert_eq!(Window::from_key(&w.key()), Some(w));
        assert_eq!(w.closes_at(Duration::hours(6)), at("2025-01-06T06:00:00Z"));
        assert_eq!(Window::from_key("hourly#2025-01-01"), None);
    }
}
