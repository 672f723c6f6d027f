//! A full scan, `SELECT count(*), sum(score) FROM t`, over the same rows hot in RocksDB and
//! flushed to Parquet: two shared tables of `rows` rows, one flushed, the two queries
//! interleaved, `repeat` rounds, medians.

use std::time::{Duration, Instant};

use kalamdb_core::{Engine, Session};

use crate::datagen::{COLUMNS, row};
use crate::report::{emit, median};

fn fill(engine: &Engine, table: &str, rows: usize) -> Result<(), String> {
    for start in (0..rows).step_by(10_000) {
        let chunk = (start..(start + 10_000).min(rows))
            .map(|id| (id.to_string(), row(id as u64)))
            .collect();
        engine
            .shared_store()
            .put_batch("b", table, chunk)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn scan(engine: &Engine, table: &str, rows: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let out = engine
        .execute(
            &Session::admin(),
            &format!("SELECT count(*) AS n, sum(score) AS s FROM b.{table}"),
        )
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let n = out[0].rows[0].get("n").and_then(|v| v.as_u64());
    if n != Some(rows as u64) {
        return Err(format!("b.{table}: counted {n:?} of {rows}"));
    }
    Ok(elapsed)
}

pub async fn run(rows: usize, repeat: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine =
        Engine::init(tmp.path().join("data"), "kalamdb-bench").map_err(|e| e.to_string())?;
    engine
        .execute(
            &Session::admin(),
            &format!("CREATE NAMESPACE b; CREATE SHARED TABLE b.hot ({COLUMNS}); CREATE SHARED TABLE b.cold ({COLUMNS})"),
        )
        .await
        .map_err(|e| e.to_string())?;
    fill(&engine, "hot", rows)?;
    fill(&engine, "cold", rows)?;
    engine
        .storage()
        .flush_memtables()
        .map_err(|e| e.to_string())?;
    engine
        .flush_table("b", "cold")
        .await
        .map_err(|e| e.to_string())?;
    // One untimed pass of each, so both read from the page cache.
    scan(&engine, "hot", rows).await?;
    scan(&engine, "cold", rows).await?;
    let (mut hot, mut cold) = (Vec::new(), Vec::new());
    for r in 0..repeat.max(1) {
        if r % 2 == 0 {
            hot.push(scan(&engine, "hot", rows).await?.as_secs_f64());
            cold.push(scan(&engine, "cold", rows).await?.as_secs_f64());
        } else {
            cold.push(scan(&engine, "cold", rows).await?.as_secs_f64());
            hot.push(scan(&engine, "hot", rows).await?.as_secs_f64());
        }
    }
    let (h, c) = (median(&hot), median(&cold));
    println!(
        "scan: SELECT count(*), sum(score) over {rows} rows, {} rounds",
        hot.len()
    );
    println!("  hot (RocksDB)       {:>8.0} ms", h * 1e3);
    println!("  flushed (Parquet)   {:>8.0} ms", c * 1e3);
    println!(
        "  ratio hot/flushed {:.3} (rows/s hot / rows/s flushed)",
        c / h.max(1e-9)
    );
    emit(
        "scan",
        serde_json::json!({"rows": rows, "repeat": hot.len(), "hot_ms": h * 1e3,
            "flushed_ms": c * 1e3, "ratio_hot_to_flushed_throughput": c / h.max(1e-9)}),
    );
    Ok(())
}
