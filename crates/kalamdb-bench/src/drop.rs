//! Table deletion time against table size: a small and a large user table, both with
//! Parquet files from every user and hot rows left in RocksDB, dropped in one run.
//!
//! Each size is built and dropped `repeat` times, alternating small and large so that both
//! see the same machine; the medians are compared. `--payload` widens every row so that the
//! large table can reach a realistic size on disk (1,000,000 rows × 1,000 bytes ≈ 1 GiB).

use std::time::{Duration, Instant};

use kalamdb_core::{DropOptions, Engine};

use crate::datagen::{create_wide_user_table, engine_with_namespace_b, fill_user_table};
use crate::report::emit;
use crate::verify::dir_bytes;

/// Hot bytes flushed at most per flush, so that building a large table stays within memory
/// (a flush holds the rows it writes).
const FLUSH_ROUND_BYTES: usize = 256 << 20;

/// One table built and dropped.
struct Trial {
    rows: usize,
    files: u64,
    parquet_bytes: u64,
    freed_bytes: u64,
    rows_estimate: u64,
    took: Duration,
}

pub struct Plan {
    pub small: usize,
    pub large: usize,
    pub users: usize,
    pub payload: usize,
    pub repeat: usize,
}

pub async fn run(plan: Plan) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine = engine_with_namespace_b(&tmp.path().join("data")).await?;
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for i in 0..plan.repeat.max(1) {
        for (label, rows, out) in [
            ("small", plan.small, &mut small),
            ("large", plan.large, &mut large),
        ] {
            let trial = build_and_drop(&engine, &format!("{label}{i}"), rows, &plan).await?;
            println!(
                "drop {label} #{}: {} rows, {} file(s), {:.1} MiB Parquet, {:.1} MiB freed, ~{} rows counted: {:.1} ms",
                i + 1,
                trial.rows,
                trial.files,
                mib(trial.parquet_bytes),
                mib(trial.freed_bytes),
                trial.rows_estimate,
                trial.took.as_secs_f64() * 1e3
            );
            out.push(trial);
        }
    }
    let (s, l) = (median(&mut small), median(&mut large));
    let ratio = l.took.as_secs_f64() / s.took.as_secs_f64().max(1e-9);
    let per_gib = l.took.as_secs_f64() * (1u64 << 30) as f64 / l.parquet_bytes.max(1) as f64;
    println!(
        "median small {:.1} ms, large {:.1} ms: ratio large/small {ratio:.2} for {}x the rows and {:.0}x the Parquet bytes",
        s.took.as_secs_f64() * 1e3,
        l.took.as_secs_f64() * 1e3,
        plan.large / plan.small.max(1),
        l.parquet_bytes as f64 / s.parquet_bytes.max(1) as f64
    );
    println!(
        "  large table: {:.1} MiB of Parquet dropped in {:.1} ms ({per_gib:.2} s per GiB)",
        mib(l.parquet_bytes),
        l.took.as_secs_f64() * 1e3
    );
    emit(
        "drop",
        serde_json::json!({
            "small_rows": plan.small, "large_rows": plan.large, "users": plan.users,
            "payload_bytes": plan.payload, "repeat": plan.repeat,
            "small_ms": s.took.as_secs_f64() * 1e3, "large_ms": l.took.as_secs_f64() * 1e3,
            "small_parquet_bytes": s.parquet_bytes, "large_parquet_bytes": l.parquet_bytes,
            "large_bytes_freed": l.freed_bytes, "large_files": l.files,
            "ratio_large_to_small": ratio, "seconds_per_gib": per_gib,
        }),
    );
    Ok(())
}

/// Creates `b.name` with nine tenths of its rows flushed to Parquet (every user's files) and
/// one tenth left hot, then drops it and times the drop alone.
async fn build_and_drop(
    engine: &Engine,
    name: &str,
    rows: usize,
    plan: &Plan,
) -> Result<Trial, String> {
    create_wide_user_table(engine, "b", name, plan.payload).await?;
    let cold = rows - rows / 10;
    let row_bytes = 60 + plan.payload;
    let per_round = (FLUSH_ROUND_BYTES / row_bytes).max(plan.users).max(1);
    let mut first = 0;
    while first < cold {
        let n = per_round.min(cold - first);
        fill_user_table(engine, "b", name, first as u64, n, plan.users, plan.payload)?;
        engine
            .flush_table("b", name)
            .await
            .map_err(|e| e.to_string())?;
        first += n;
    }
    fill_user_table(
        engine,
        "b",
        name,
        cold as u64,
        rows / 10,
        plan.users,
        plan.payload,
    )?;
    engine
        .storage()
        .flush_memtables()
        .map_err(|e| e.to_string())?;
    let parquet_bytes = dir_bytes(&engine.data_dir().storage().join("b").join(name));

    let started = Instant::now();
    let report = engine
        .drop_table("b", name, &DropOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the table vanished before the drop")?;
    let took = started.elapsed();
    Ok(Trial {
        rows,
        files: report.files_deleted,
        parquet_bytes,
        freed_bytes: report.bytes_freed + report.hot_bytes_released,
        rows_estimate: report.rows_estimate,
        took,
    })
}

fn median(trials: &mut [Trial]) -> &Trial {
    trials.sort_by_key(|t| t.took);
    &trials[trials.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
