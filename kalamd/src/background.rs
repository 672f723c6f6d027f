//! Background loops: policy-driven flush, stream eviction and job retention. Each loop stops
//! at a safe point (between runs, never inside one) when shutdown begins.

use std::time::Duration;

use kalamdb_core::Engine;
use kalamdb_core::maintenance::FlushScheduler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Waits `every`, unless shutdown begins first. Returns false on shutdown.
async fn wait(every: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

pub fn spawn(engine: Engine, config: &Config, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let flush_every = Duration::from_secs(config.flush.check_interval_seconds);
    let evict_every = Duration::from_secs(config.eviction.interval_seconds);
    let retain_every = Duration::from_secs(config.retention.check_interval_seconds);
    let completed_ms = config.retention.completed_jobs_days as i64 * DAY_MS;
    let failed_ms = config.retention.failed_jobs_days as i64 * DAY_MS;

    let (e1, mut s1) = (engine.clone(), stop.clone());
    let flush = tokio::spawn(async move {
        let mut scheduler = FlushScheduler::default();
        while wait(flush_every, &mut s1).await {
            match scheduler.tick(&e1).await {
                Ok(reports) => {
                    for r in reports {
                        tracing::info!(job = %r.job_id, rows = r.rows, files = r.files, "policy flush");
                    }
                }
                Err(e) => tracing::error!(error = %e, "policy flush failed"),
            }
        }
    });
    let (e2, mut s2) = (engine.clone(), stop.clone());
    let evict = tokio::spawn(async move {
        while wait(evict_every, &mut s2).await {
            match e2.evict_streams().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "evicted stream rows"),
                Err(e) => tracing::error!(error = %e, "stream eviction failed"),
            }
        }
    });
    let (e3, mut s3) = (engine, stop);
    let retain = tokio::spawn(async move {
        loop {
            let engine = e3.clone();
            match tokio::task::spawn_blocking(move || engine.prune_jobs(completed_ms, failed_ms))
                .await
            {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(jobs = n, "pruned old jobs"),
                Ok(Err(e)) => tracing::error!(error = %e, "job retention failed"),
                Err(e) => tracing::error!(error = %e, "job retention panicked"),
            }
            if !wait(retain_every, &mut s3).await {
                break;
            }
        }
    });
    vec![flush, evict, retain]
}
