//! `kalamctl migrate apply` on a large G2 directory against a raw read and write of the same
//! catalog keys, and at two row counts: rows are never rewritten, so the time should not
//! grow with them.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use kalamdb_migrate::{self as migrate, ApplyOptions};
use kalamdb_store::{Batch, OpenMode, Storage};

use crate::report::emit;

pub struct Plan {
    pub tables: usize,
    pub data_tables: usize,
    pub rows: usize,
    pub few_rows: usize,
    pub repeat: usize,
}

pub fn run(plan: Plan) -> Result<(), String> {
    let (mut many, mut few, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let mut keys = 0;
    for _ in 0..plan.repeat.max(1) {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        keys = kalamdb_fixtures::write_g2_bulk(&a, plan.tables, plan.data_tables, plan.rows)?;
        kalamdb_fixtures::write_g2_bulk(&b, plan.tables, plan.data_tables, plan.few_rows)?;
        kalamdb_fixtures::write_g2_bulk(&c, plan.tables, plan.data_tables, plan.few_rows)?;
        many.push(apply(&a)?);
        few.push(apply(&b)?);
        raw.push(raw_copy(&c)?);
    }
    for v in [&mut many, &mut few, &mut raw] {
        v.sort();
    }
    let med = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1e3;
    let (m, f, r) = (med(&many), med(&few), med(&raw));
    println!(
        "migrate: G2, {} tables of metadata ({} catalog keys), {} with a data column family",
        plan.tables, keys, plan.data_tables
    );
    println!("  apply, {:>9} rows   {m:>8.0} ms", plan.rows);
    println!("  apply, {:>9} rows   {f:>8.0} ms", plan.few_rows);
    println!("  raw read+write of the catalog keys {r:>8.0} ms");
    println!(
        "  ratio apply/raw {:.2}; apply {} rows / {} rows {:.2}",
        f / r.max(1e-9),
        plan.rows,
        plan.few_rows,
        m / f.max(1e-9)
    );
    emit(
        "migrate",
        serde_json::json!({
            "tables": plan.tables, "data_tables": plan.data_tables, "catalog_keys": keys,
            "rows": plan.rows, "few_rows": plan.few_rows, "repeat": plan.repeat,
            "apply_ms": m, "apply_few_rows_ms": f, "raw_ms": r,
            "ratio_apply_to_raw": f / r.max(1e-9), "ratio_rows": m / f.max(1e-9),
        }),
    );
    Ok(())
}

fn apply(dir: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let report = migrate::apply(dir, ApplyOptions::default()).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    if report.state != "applied" || report.skipped_invalid != 0 {
        return Err(format!("unexpected apply: {report:?}"));
    }
    Ok(took)
}

/// Opens the database, reads every catalog key and writes each back, in one synced batch:
/// what a migration cannot do with less.
fn raw_copy(dir: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let mut storage =
        Storage::open(&dir.join("rocksdb"), OpenMode::ReadWrite).map_err(|e| e.to_string())?;
    storage.set_sync_writes(true);
    let mut batch = Batch::new();
    for cf in kalamdb_fixtures::G2_CATALOG {
        storage
            .scan_prefix(cf, b"", |k, v| {
                batch.put(cf, k.to_vec(), v.to_vec());
                Ok(ControlFlow::Continue(()))
            })
            .map_err(|e| e.to_string())?;
    }
    storage.write(batch).map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}
