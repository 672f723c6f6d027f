//! Table deletion time against table size: a small and a large user table, both with
//! Parquet files from every user and hot rows left in RocksDB, dropped in one run.

use std::time::Instant;

use kalamdb_core::{DropOptions, Engine, Session};

use crate::datagen::{create_user_table, fill_user_table};
use crate::report::emit;

pub async fn run(small: usize, large: usize, users: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine =
        Engine::init(tmp.path().join("data"), "kalamdb-bench").map_err(|e| e.to_string())?;
    engine
        .execute(&Session::admin(), "CREATE NAMESPACE b")
        .await
        .map_err(|e| e.to_string())?;
    let mut figures = Vec::new();
    for (name, rows) in [("small", small), ("large", large)] {
        // Nine tenths flushed to Parquet (one file per user), one tenth left hot.
        let cold = rows - rows / 10;
        create_user_table(&engine, "b", name, cold, users).await?;
        engine
            .flush_table("b", name)
            .await
            .map_err(|e| e.to_string())?;
        fill_user_table(&engine, "b", name, cold as u64, rows / 10, users)?;
        engine
            .storage()
            .flush_memtables()
            .map_err(|e| e.to_string())?;

        let started = Instant::now();
        let report = engine
            .drop_table("b", name, &DropOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the table vanished before the drop")?;
        let took = started.elapsed();
        println!(
            "drop {name}: {rows} rows, {} file(s), {:.1} MiB Parquet, ~{} rows counted: {:.1} ms",
            report.files_deleted,
            report.bytes_freed as f64 / (1024.0 * 1024.0),
            report.rows_estimate,
            took.as_secs_f64() * 1e3
        );
        figures.push((rows, report, took));
    }
    let (small_t, large_t) = (figures[0].2, figures[1].2);
    let ratio = large_t.as_secs_f64() / small_t.as_secs_f64().max(1e-9);
    let large_bytes = figures[1].1.bytes_freed.max(1) as f64;
    let per_gib = large_t.as_secs_f64() * (1024.0 * 1024.0 * 1024.0) / large_bytes;
    println!(
        "  ratio large/small {ratio:.2} ({}x the rows)",
        large / small.max(1)
    );
    println!("  time per GiB of Parquet, at the large table's file size: {per_gib:.2} s");
    emit(
        "drop",
        serde_json::json!({
            "small_rows": small, "large_rows": large, "users": users,
            "small_ms": small_t.as_secs_f64() * 1e3, "large_ms": large_t.as_secs_f64() * 1e3,
            "large_parquet_bytes": figures[1].1.bytes_freed, "files_per_table": figures[1].1.files_deleted,
            "ratio_large_to_small": ratio, "seconds_per_gib": per_gib,
        }),
    );
    Ok(())
}
