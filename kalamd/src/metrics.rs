//! Prometheus metrics, served on `/metrics` in the OpenMetrics text format.

use std::path::Path;

use kalamdb_core::Engine;

use crate::background::{Health, TASKS};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job_type: String,
    status: String,
}

type HistogramFamily = Family<PathLabels, Histogram, fn() -> Histogram>;

/// Request metrics, updated as requests finish; engine metrics are read at scrape time.
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl Metrics {
    pub fn observe(&self, method: &str, path: &str, status: u16, seconds: f64) {
        let path = match path {
            "/v1/api/sql" | "/health" | "/ready" | "/metrics" => path,
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                path: path.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&PathLabels {
                path: path.to_string(),
            })
            .observe(seconds);
    }

    /// Renders every metric.
    pub fn render(&self, engine: &Engine, health: &Health) -> String {
        let mut reg = Registry::with_prefix("kalamdb");
        reg.register(
            "http_requests",
            "HTTP requests by method, path and status",
            self.requests.clone(),
        );
        reg.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            self.latency.clone(),
        );

        let stats = engine.stats().snapshot();
        let live = &engine.live().stats;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        for (name, help, value) in [
            (
                "rows_written",
                "Rows written by INSERT, UPDATE and DELETE",
                stats.rows_written,
            ),
            ("flushes", "Flushes to Parquet", stats.flushes),
            (
                "rows_flushed",
                "Rows flushed to Parquet",
                stats.rows_flushed,
            ),
            (
                "evictions",
                "Stream eviction runs that removed rows",
                stats.evictions,
            ),
            (
                "rows_evicted",
                "Stream rows evicted by TTL or MAX_BUFFER",
                stats.rows_evicted,
            ),
            (
                "live_changes_sent",
                "Changes delivered to live-query subscribers",
                load(&live.changes_sent),
            ),
            (
                "live_slow_consumers_closed",
                "Subscriptions closed because their client fell too far behind",
                load(&live.slow_consumers_closed),
            ),
        ] {
            let c = Counter::<u64>::default();
            c.inc_by(value);
            reg.register(name, help, c);
        }
        for (name, help, value) in [
            (
                "live_connections",
                "Open WebSocket connections on /v1/ws",
                load(&live.connections),
            ),
            (
                "live_subscriptions",
                "Live-query subscriptions",
                load(&live.subscriptions),
            ),
        ] {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            reg.register(name, help, g);
        }

        let failures = Family::<TaskLabels, Counter>::default();
        let up = Family::<TaskLabels, Gauge>::default();
        let down = health.down();
        for task in TASKS {
            let labels = TaskLabels {
                task: task.to_string(),
            };
            failures
                .get_or_create(&labels)
                .inc_by(health.failures(task));
            up.get_or_create(&labels)
                .set(i64::from(!down.iter().any(|(name, _)| *name == task)));
        }
        reg.register(
            "background_failures",
            "Failed or panicked runs of kalamd's background loops",
            failures,
        );
        reg.register(
            "background_up",
            "1 when the background loop's last run succeeded (or it has not run yet), else 0",
            up,
        );

        let jobs = Family::<JobLabels, Gauge>::default();
        if let Ok((records, _)) = engine.sql().jobs().scan_lenient() {
            for j in records {
                jobs.get_or_create(&JobLabels {
                    job_type: j.job_type,
                    status: j.status.to_string(),
                })
                .inc();
            }
        }
        reg.register("jobs", "Jobs in system.jobs by type and status", jobs);

        let rocks = Gauge::<i64>::default();
        rocks.set(dir_size(&engine.data_dir().rocksdb()) as i64);
        reg.register(
            "rocksdb_size_bytes",
            "Bytes on disk of the RocksDB directory",
            rocks,
        );
        let parquet = Gauge::<i64>::default();
        parquet.set(dir_size(&engine.data_dir().storage()) as i64);
        reg.register(
            "parquet_size_bytes",
            "Bytes of Parquet files under the default storage",
            parquet,
        );

        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

/// Total size of the regular files below `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
