//! Counters the engine keeps for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    rows_written: AtomicU64,
    flushes: AtomicU64,
    rows_flushed: AtomicU64,
    evictions: AtomicU64,
    rows_evicted: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Rows written by INSERT, UPDATE and DELETE.
    pub rows_written: u64,
    pub flushes: u64,
    pub rows_flushed: u64,
    /// Eviction runs that removed stream rows.
    pub evictions: u64,
    pub rows_evicted: u64,
}

impl Stats {
    pub(crate) fn wrote(&self, rows: u64) {
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
    }
    pub(crate) fn flushed(&self, rows: u64) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.rows_flushed.fetch_add(rows, Ordering::Relaxed);
    }
    pub(crate) fn evicted(&self, rows: u64) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        self.rows_evicted.fetch_add(rows, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rows_written: self.rows_written.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            rows_flushed: self.rows_flushed.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            rows_evicted: self.rows_evicted.load(Ordering::Relaxed),
        }
    }
}
