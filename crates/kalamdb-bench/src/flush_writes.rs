//! INSERTs into a table while it is being flushed: their latency during the flush, against
//! the same INSERTs with no flush running, on the same table. Each round fills a fresh user
//! table, then sends single-row INSERTs (new keys, one user) back to back for as long as a
//! flush of the table runs, then for as long again with none; `repeat` rounds.

use std::time::{Duration, Instant};

use kalamdb_core::{Engine, Session};

use crate::datagen::{filled_wide_user_table, sql_row};
use crate::report::{emit, median, micros, percentile};

/// Single-row INSERTs for `span` or until `until` says stop, whichever is first; their
/// latencies, sorted.
async fn inserts(
    engine: &Engine,
    first: u64,
    until: impl Fn() -> bool,
    span: Option<Duration>,
) -> Result<Vec<Duration>, String> {
    let session = Session::user("writer");
    let started = Instant::now();
    let mut lat = Vec::new();
    let mut id = first;
    while !until() && span.is_none_or(|s| started.elapsed() < s) {
        let sql = format!(
            "INSERT INTO b.t (id, name, score, active) VALUES {}",
            sql_row(id)
        );
        let t = Instant::now();
        engine
            .execute(&session, &sql)
            .await
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        id += 1;
    }
    lat.sort();
    Ok(lat)
}

struct Round {
    flush_secs: f64,
    during: Vec<Duration>,
    alone: Vec<Duration>,
}

async fn round(mb: usize, payload: usize, users: usize) -> Result<Round, String> {
    let (_tmp, engine, _rows) = filled_wide_user_table(mb, payload, users, None, "").await?;
    let started = Instant::now();
    let flushing = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.flush_table("b", "t").await })
    };
    let during = inserts(&engine, 1 << 40, || flushing.is_finished(), None).await?;
    let flushed = flushing
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let flush_secs = started.elapsed().as_secs_f64();
    if flushed.rows == 0 {
        return Err("the flush moved no rows".into());
    }
    let alone = inserts(
        &engine,
        2 << 40,
        || false,
        Some(Duration::from_secs_f64(flush_secs)),
    )
    .await?;
    Ok(Round {
        flush_secs,
        during,
        alone,
    })
}

pub async fn run(mb: usize, payload: usize, users: usize, repeat: usize) -> Result<(), String> {
    let mut rounds = Vec::new();
    for _ in 0..repeat.max(1) {
        rounds.push(round(mb, payload, users).await?);
    }
    let med = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let us = |lat: &[Duration], p: f64| micros(percentile(lat, p));
    let max = |lat: &[Duration]| micros(lat.last().copied().unwrap_or_default());
    let figures = serde_json::json!({
        "mb": mb,
        "repeat": rounds.len(),
        "flush_secs": med(&|r| r.flush_secs),
        "inserts_during_flush": med(&|r| r.during.len() as f64),
        "during_p50_us": med(&|r| us(&r.during, 50.0)),
        "during_p99_us": med(&|r| us(&r.during, 99.0)),
        "during_max_us": med(&|r| max(&r.during)),
        "alone_p50_us": med(&|r| us(&r.alone, 50.0)),
        "alone_p99_us": med(&|r| us(&r.alone, 99.0)),
        "alone_max_us": med(&|r| max(&r.alone)),
        "ratio_during_max_to_flush": med(&|r| max(&r.during) / 1e6 / r.flush_secs),
    });
    println!(
        "flush-writes: {mb} MB, {} rounds: flush {:.2} s; single-row INSERTs during it: {} (p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs); with no flush: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        rounds.len(),
        figures["flush_secs"].as_f64().unwrap_or(f64::NAN),
        figures["inserts_during_flush"],
        figures["during_p50_us"].as_f64().unwrap_or(f64::NAN),
        figures["during_p99_us"].as_f64().unwrap_or(f64::NAN),
        figures["during_max_us"].as_f64().unwrap_or(f64::NAN),
        figures["alone_p50_us"].as_f64().unwrap_or(f64::NAN),
        figures["alone_p99_us"].as_f64().unwrap_or(f64::NAN),
        figures["alone_max_us"].as_f64().unwrap_or(f64::NAN),
    );
    emit("flush-writes", figures);
    Ok(())
}
