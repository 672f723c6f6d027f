//! `kalamctl verify` against the floor it cannot beat: a bare iteration of every column
//! family with block checksums verified, on the same directory, in the same run.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use kalamdb_core::Engine;

use crate::datagen::{create_wide_user_table, engine_with_namespace_b, fill_user_table};
use crate::report::emit;

pub async fn run(rows: usize, users: usize, payload: usize, repeat: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = tmp.path().join("data");
    {
        let engine = engine_with_namespace_b(&data).await?;
        create_wide_user_table(&engine, "b", "t", payload).await?;
        fill_user_table(&engine, "b", "t", 0, rows, users, payload)?;
        engine
            .storage()
            .flush_memtables()
            .map_err(|e| e.to_string())?;
    }
    // Read-only, as verify runs next to kalamd.
    let engine = Engine::open_for_verify(&data, false).map_err(|e| e.to_string())?;
    let on_disk = dir_bytes(&data.join("rocksdb"));
    println!(
        "verify: {rows} rows of ~{} bytes, {:.2} GiB of RocksDB files",
        60 + payload,
        on_disk as f64 / (1u64 << 30) as f64
    );
    // The floor with the parallelism verify uses: each column family split by its SST key
    // ranges and read on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One untimed pass of each, so all see the same page cache.
    bare_scan(&engine)?;
    bare_parallel(&engine, threads)?;
    verify(&engine)?;
    let (mut bare, mut par, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat.max(1) {
        bare.push(bare_scan(&engine)?);
        par.push(bare_parallel(&engine, threads)?);
        full.push(verify(&engine)?);
    }
    bare.sort();
    par.sort();
    full.sort();
    let (b, p, f) = (
        bare[bare.len() / 2],
        par[par.len() / 2],
        full[full.len() / 2],
    );
    let ratio = f.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let ratio_par = f.as_secs_f64() / p.as_secs_f64().max(1e-9);
    let gib = on_disk as f64 / (1u64 << 30) as f64;
    println!(
        "  bare checksum-verified iteration  {:>8.0} ms  ({:.0} MiB/s)",
        b.as_secs_f64() * 1e3,
        gib * 1024.0 / b.as_secs_f64()
    );
    println!(
        "  the same on {threads} threads            {:>8.0} ms  ({:.0} MiB/s)",
        p.as_secs_f64() * 1e3,
        gib * 1024.0 / p.as_secs_f64()
    );
    println!(
        "  kalamctl verify (all checks)       {:>8.0} ms  ({:.0} MiB/s)",
        f.as_secs_f64() * 1e3,
        gib * 1024.0 / f.as_secs_f64()
    );
    println!("  ratio verify/bare {ratio:.2}; verify/bare on {threads} threads {ratio_par:.2}");
    emit(
        "verify",
        serde_json::json!({
            "rows": rows, "users": users, "payload_bytes": payload, "repeat": repeat,
            "rocksdb_bytes": on_disk, "bare_ms": b.as_secs_f64() * 1e3,
            "verify_ms": f.as_secs_f64() * 1e3, "ratio_verify_to_bare": ratio,
            "threads": threads, "bare_parallel_ms": p.as_secs_f64() * 1e3,
            "ratio_verify_to_bare_parallel": ratio_par,
        }),
    );
    Ok(())
}

fn bare_scan(engine: &Engine) -> Result<Duration, String> {
    let started = Instant::now();
    let storage = engine.storage();
    for cf in storage.column_families().map_err(|e| e.to_string())? {
        storage
            .scan_verified(&cf, |_, _| Ok(ControlFlow::Continue(())))
            .map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

fn bare_parallel(engine: &Engine, threads: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let storage = engine.storage();
    for cf in storage.column_families().map_err(|e| e.to_string())? {
        let cuts = storage
            .split_keys(&cf, threads * 4)
            .map_err(|e| e.to_string())?;
        let mut bounds: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut from = Vec::new();
        for cut in cuts {
            bounds.push((std::mem::replace(&mut from, cut.clone()), Some(cut)));
        }
        bounds.push((from, None));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.min(bounds.len()))
                .map(|_| {
                    s.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((from, to)) = bounds.get(i) else {
                                return Ok(());
                            };
                            storage
                                .scan_verified_range(&cf, from, to.as_deref(), |_, _| {
                                    Ok(ControlFlow::Continue(()))
                                })
                                .map_err(|e| e.to_string())?;
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err("a scan thread panicked".into()))
                })
                .find_map(Result::err)
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(started.elapsed())
}

fn verify(engine: &Engine) -> Result<Duration, String> {
    let started = Instant::now();
    let report = kalamdb_verify::verify(
        engine,
        kalamdb_verify::VerifyOptions::default(),
        &|_, _, _| {},
    )
    .map_err(|e| e.to_string())?;
    if !report.findings.is_empty() {
        return Err(format!("unexpected findings: {:?}", report.findings));
    }
    Ok(started.elapsed())
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}
