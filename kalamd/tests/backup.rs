//! Online backups of a running kalamd: `kalamctl backup create --server` and
//! `BACKUP DATABASE TO`, taken while inserts and flushes continue.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ADMIN, Daemon, agent, kalamctl_path};
use serde_json::Value;

const WRITERS: i64 = 3;

#[test]
fn an_online_backup_during_inserts_and_flushes_restores_a_consistent_state() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The backup pauses between its RocksDB checkpoint and linking the Parquet files: a
    // flush in that window, were it not held off, would add rows written after the snapshot.
    let d = Daemon::start_with_env(
        tmp.path(),
        "",
        &[("FAILPOINTS", "backup.checkpointed=sleep(300)")],
    );
    d.rows(
        ADMIN,
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.log (w BIGINT, seq BIGINT, id BIGINT PRIMARY KEY); \
         CREATE SHARED TABLE app.after (w BIGINT, seq BIGINT, id BIGINT PRIMARY KEY)",
    );

    // Each writer inserts its own sequence, one acknowledged row at a time, first into
    // app.log, then into app.after; a flusher moves app.after's rows to Parquet meanwhile.
    // A consistent snapshot holds, for every writer, a prefix 0..k of its sequence in each
    // table, each row once, and never more rows in app.after than in app.log.
    let stop = Arc::new(AtomicBool::new(false));
    let port = d.port;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut seq = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    let id = w * 1_000_000_000 + seq;
                    let first = format!("INSERT INTO app.log VALUES ({w}, {seq}, {id})");
                    let then = format!("INSERT INTO app.after VALUES ({w}, {seq}, {id})");
                    if post(&agent, port, &first).0 == 200 && post(&agent, port, &then).0 == 200 {
                        seq += 1;
                    }
                }
                seq
            })
        })
        .collect();
    let flusher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let agent = agent();
            let mut flushes = 0;
            while !stop.load(Ordering::Relaxed) {
                if post(&agent, port, "FLUSH TABLE app.after").0 == 200 {
                    flushes += 1;
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            flushes
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    let repo = tmp.path().join("repo");
    let out = Command::new(kalamctl_path())
        .args([
            "backup",
            "create",
            "--server",
            &d.url(""),
            "--token",
            ADMIN,
            "--to",
            repo.to_str().expect("utf8"),
            "--format",
            "json",
        ])
        .output()
        .expect("run kalamctl");
    assert!(
        out.status.success(),
        "backup --server: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    // The SQL form, while the writers still run.
    let sql_row = d.rows(ADMIN, &format!("BACKUP DATABASE TO '{}'", repo.display()));
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<i64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let flushes = flusher.join().expect("flusher");
    assert!(flushes > 3, "the flusher ran ({flushes})");
    assert_eq!(sql_row[0]["status"], "completed", "{sql_row:?}");
    assert_eq!(sql_row[0]["backup_id"], 2);

    // Both backups are `backup` jobs in the server's database.
    let jobs = d.rows(
        ADMIN,
        "SELECT job_id, status FROM system.jobs WHERE job_type = 'backup'",
    );
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:?}");
    assert!(jobs.iter().any(|j| j["job_id"] == report["job_id"]));

    for id in ["1", "2"] {
        let target = tmp.path().join(format!("restored-{id}"));
        let r = kalamctl(&[
            "backup",
            "restore",
            repo.to_str().expect("utf8"),
            "--id",
            id,
            "--to",
            target.to_str().expect("utf8"),
        ]);
        assert!(r.0, "restore {id}: {}", r.1);
        let log = prefixes(&target, "app.log", id, &acked);
        let after = prefixes(&target, "app.after", id, &acked);
        for w in 0..WRITERS {
            assert!(
                after[&w] <= log[&w],
                "backup {id}: writer {w} has {} rows in app.after but {} in app.log: not one point in time",
                after[&w],
                log[&w]
            );
        }
    }
}

/// Per writer, how many rows the restored table holds; asserts they are 0..k, each once.
fn prefixes(target: &std::path::Path, table: &str, id: &str, acked: &[i64]) -> BTreeMap<i64, i64> {
    let (ok, text) = kalamctl(&[
        "sql",
        "--data-dir",
        target.to_str().expect("utf8"),
        "--format",
        "json",
        &format!("SELECT w, seq FROM {table}"),
    ]);
    assert!(ok, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let mut seqs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for row in body["results"][0]["rows"].as_array().expect("rows") {
        let (w, s) = (
            row["w"].as_i64().expect("w"),
            row["seq"].as_i64().expect("seq"),
        );
        seqs.entry(w).or_default().push(s);
    }
    assert_eq!(
        seqs.len() as i64,
        WRITERS,
        "every writer had rows in {table} by then"
    );
    seqs.into_iter()
        .map(|(w, mut s)| {
            s.sort_unstable();
            let k = s.len() as i64;
            assert_eq!(
                s,
                (0..k).collect::<Vec<_>>(),
                "backup {id}: writer {w}'s rows in {table} are not a prefix (gap or duplicate)"
            );
            assert!(
                k <= acked[w as usize],
                "backup {id}: more rows than acknowledged"
            );
            (w, k)
        })
        .collect()
}

fn kalamctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(kalamctl_path())
        .args(args)
        .output()
        .expect("run kalamctl");
    let text = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    (out.status.success(), text)
}

fn post(agent: &ureq::Agent, port: u16, sql: &str) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}/v1/api/sql");
    common::post_sql(agent, &url, Some(ADMIN), None, sql)
}
