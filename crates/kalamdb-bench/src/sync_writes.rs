//! What `storage.sync_writes` (on by default: acknowledged writes survive a power cut) costs:
//! kalamd HTTP INSERT throughput with the WAL fsynced before each acknowledgement, against
//! kalamd with it off, side by side, interleaved, medians of `repeat` runs.

use serde_json::json;

use crate::datagen::COLUMNS;
use crate::http::{agent, insert_over_http, post, start_kalamd_with, work};
use crate::report::{emit, median};

const CONCURRENCY: [usize; 2] = [1, 8];

/// One run: a fresh kalamd, `c` clients each sending `per_worker` INSERTs of `batch` rows.
fn run_once(sync: bool, c: usize, per_worker: usize, batch: usize) -> Result<f64, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = tmp.path().join("data");
    let flag = if sync { "true" } else { "false" };
    let (kalamd, port) = start_kalamd_with(&data, &[("KALAMD_STORAGE_SYNC_WRITES", flag)])?;
    post(&agent(), port, "root", "CREATE NAMESPACE b")?;
    post(
        &agent(),
        port,
        "root",
        &format!("CREATE USER TABLE b.t ({COLUMNS})"),
    )?;
    let rps = insert_over_http(port, work("b.t", c, per_worker, batch), batch)?;
    drop(kalamd);
    Ok(rps)
}

pub fn run(per_worker: usize, batch: usize, repeat: usize) -> Result<(), String> {
    let mut figures = serde_json::Map::new();
    println!(
        "  {:<14} {:>16} {:>16} {:>8}",
        "", "synced WAL", "unsynced WAL", "ratio"
    );
    for c in CONCURRENCY {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for r in 0..repeat.max(3) {
            // Interleaved, the order alternating, so drift hits both alike.
            for sync in if r % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            } {
                let rps = run_once(sync, c, per_worker, batch)?;
                if sync { on.push(rps) } else { off.push(rps) }
            }
        }
        let (on, off) = (median(&on), median(&off));
        println!(
            "  {:<14} {on:>12.0} r/s {off:>12.0} r/s {:>8.3}",
            format!("INSERT c={c}"),
            on / off
        );
        figures.insert(format!("synced_c{c}_rows_per_s"), json!(on.round()));
        figures.insert(format!("unsynced_c{c}_rows_per_s"), json!(off.round()));
        figures.insert(format!("ratio_synced_to_unsynced_c{c}"), json!(on / off));
    }
    figures.insert("batch".into(), json!(batch));
    figures.insert("statements_per_worker".into(), json!(per_worker));
    figures.insert("repeat".into(), json!(repeat.max(3)));
    emit("sync-writes", serde_json::Value::Object(figures));
    Ok(())
}
