//! Background loops: policy-driven flush, stream eviction and job retention.
//!
//! Each loop is supervised: a run that fails or panics is logged with the error, counted in
//! `/metrics`, reported by `/ready` until a later run succeeds, and retried with back-off
//! (1 s, doubling, at most [`MAX_BACKOFF`]). No loop can die silently. Each loop stops at a
//! safe point (between runs, never inside one) when shutdown begins.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kalamdb_core::maintenance::FlushScheduler;
use kalamdb_core::{Engine, limits};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

/// The longest wait before a failed loop runs again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The supervised loops, by name (the `task` label in `/metrics`).
pub const TASKS: [&str; 3] = ["flush", "eviction", "retention"];

/// One loop's health.
#[derive(Debug, Default)]
struct TaskHealth {
    failures: AtomicU64,
    /// The last failure, while the loop has not succeeded since.
    down: Mutex<Option<String>>,
}

/// The health of every background loop, shared with `/ready` and `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    tasks: [TaskHealth; 3],
}

impl Health {
    fn task(&self, name: &str) -> Option<&TaskHealth> {
        TASKS
            .iter()
            .position(|t| *t == name)
            .and_then(|i| self.tasks.get(i))
    }

    fn failed(&self, name: &str, why: String) {
        if let Some(t) = self.task(name) {
            t.failures.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut down) = t.down.lock() {
                *down = Some(why);
            }
        }
    }

    fn succeeded(&self, name: &str) {
        if let Some(t) = self.task(name)
            && let Ok(mut down) = t.down.lock()
        {
            *down = None;
        }
    }

    /// Failed runs of `name` since kalamd started.
    pub fn failures(&self, name: &str) -> u64 {
        self.task(name)
            .map_or(0, |t| t.failures.load(Ordering::Relaxed))
    }

    /// The loops whose last run failed, with the error.
    pub fn down(&self) -> Vec<(&'static str, String)> {
        TASKS
            .iter()
            .zip(&self.tasks)
            .filter_map(|(name, t)| {
                let why = t.down.lock().ok()?.clone()?;
                Some((*name, why))
            })
            .collect()
    }
}

/// Waits `every`, unless shutdown begins first. Returns false on shutdown.
async fn wait(every: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

type RunFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Run = Box<dyn Fn() -> RunFuture + Send + Sync>;

/// What a panic carried, as text.
fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return format!("was aborted: {e}");
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    format!("panicked: {text}")
}

/// Runs `run` every `every` (first after `every`, or at once when `now`), each run in a task
/// of its own so that a panic is caught; failures back off.
fn supervise(
    name: &'static str,
    every: Duration,
    now: bool,
    run: Run,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if !now && !wait(every, &mut stop).await {
            return;
        }
        let mut backoff = Duration::ZERO;
        loop {
            let failure = match tokio::spawn(run()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(panic_text(e)),
            };
            let next = match failure {
                None => {
                    health.succeeded(name);
                    backoff = Duration::ZERO;
                    every
                }
                Some(why) => {
                    backoff = backoff.saturating_mul(2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                    tracing::error!(
                        task = name,
                        error = %why,
                        retry_in_seconds = backoff.as_secs(),
                        "background task failed; it will run again"
                    );
                    health.failed(name, why);
                    backoff
                }
            };
            if !wait(next, &mut stop).await {
                break;
            }
        }
    })
}

/// A fail point at the start of each run, for the supervision tests.
fn fail_point(name: &str) {
    kalamdb_core::fail::point(name);
}

pub fn spawn(
    engine: Engine,
    config: &Config,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let flush_every = Duration::from_secs(config.flush.check_interval_seconds);
    let evict_every = Duration::from_secs(config.eviction.interval_seconds);
    let retain_every = Duration::from_secs(config.retention.check_interval_seconds);
    let completed_ms = limits::days_to_ms(config.retention.completed_jobs_days);
    let failed_ms = limits::days_to_ms(config.retention.failed_jobs_days);

    // The scheduler remembers when each table was last flushed; a panic mid-tick loses it
    // and the next run starts afresh, as at startup.
    let scheduler = Arc::new(tokio::sync::Mutex::new(FlushScheduler::default()));
    let e1 = engine.clone();
    let flush: Run = Box::new(move || {
        let (engine, scheduler) = (e1.clone(), scheduler.clone());
        Box::pin(async move {
            let mut scheduler = scheduler.lock().await;
            fail_point("kalamd.background.flush");
            let reports = match scheduler.tick(&engine).await {
                Ok(r) => r,
                Err(e) => {
                    *scheduler = FlushScheduler::default();
                    return Err(e.to_string());
                }
            };
            for r in reports {
                tracing::info!(job = %r.job_id, rows = r.rows, files = r.files, "policy flush");
            }
            Ok(())
        })
    });
    let e2 = engine.clone();
    let evict: Run = Box::new(move || {
        let engine = e2.clone();
        Box::pin(async move {
            fail_point("kalamd.background.eviction");
            match engine.evict_streams().await {
                Ok(0) => Ok(()),
                Ok(n) => {
                    tracing::info!(rows = n, "evicted stream rows");
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
    });
    let e3 = engine;
    let retain: Run = Box::new(move || {
        let engine = e3.clone();
        Box::pin(async move {
            let pruned = tokio::task::spawn_blocking(move || {
                fail_point("kalamd.background.retention");
                engine.prune_jobs(completed_ms, failed_ms)
            })
            .await
            .map_err(panic_text)?
            .map_err(|e| e.to_string())?;
            if pruned > 0 {
                tracing::info!(jobs = pruned, "pruned old jobs");
            }
            Ok(())
        })
    });
    vec![
        supervise(
            "flush",
            flush_every,
            false,
            flush,
            health.clone(),
            stop.clone(),
        ),
        supervise(
            "eviction",
            evict_every,
            false,
            evict,
            health.clone(),
            stop.clone(),
        ),
        supervise("retention", retain_every, true, retain, health, stop),
    ]
}
