//! A soak run of the real kalamd: many clients mixing INSERT, point SELECT, scans and FLUSH,
//! with an online backup every bucket, for a fixed time. Reports, per bucket (a minute by
//! default): requests, errors (the goal is 0), p50/p99 latency, and kalamd's RSS (the goal is
//! flat after warm-up).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::datagen::{COLUMNS, sql_row, user};
use crate::http::{agent, post, start_kalamd};
use crate::report::{emit, micros, percentile};

pub struct Plan {
    pub clients: usize,
    pub seconds: u64,
    pub bucket_seconds: u64,
}

/// One request's outcome: when it ended (bucket), how long it took, and whether it failed.
struct Sample {
    bucket: usize,
    latency: Duration,
    failed: bool,
}

/// kalamd's resident set, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    crate::report::proc_status_kib(pid, "VmRSS")
}

pub fn run(plan: Plan) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = tmp.path().join("data");
    let repo = tmp.path().join("backups");
    let (kalamd, port) = start_kalamd(&data)?;
    let pid = kalamd.0.id();
    let setup = agent();
    post(&setup, port, "root", "CREATE NAMESPACE soak")?;
    post(
        &setup,
        port,
        "root",
        &format!("CREATE USER TABLE soak.events ({COLUMNS})"),
    )?;
    let buckets = usize::try_from(plan.seconds.div_ceil(plan.bucket_seconds.max(1))).unwrap_or(1);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(0));
    let bucket_of = move |at: Instant| -> usize {
        let s = at.duration_since(started).as_secs() / plan.bucket_seconds.max(1);
        usize::try_from(s).unwrap_or(usize::MAX).min(buckets - 1)
    };
    let clients: Vec<_> = (0..plan.clients)
        .map(|c| {
            let (stop, next_id) = (stop.clone(), next_id.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let me = user(c % 16);
                let mut samples = Vec::new();
                let mut mine: Vec<u64> = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // 60% INSERT of 10 rows, 25% point SELECT, 13% scan, 2% FLUSH.
                    let pick = (n.wrapping_mul(2_654_435_761).wrapping_add(c as u64 * 97)) % 100;
                    let sql = if pick < 60 || mine.is_empty() {
                        let first = next_id.fetch_add(10, Ordering::Relaxed);
                        let rows: Vec<String> = (first..first + 10).map(sql_row).collect();
                        mine.push(first);
                        format!("INSERT INTO soak.events VALUES {}", rows.join(", "))
                    } else if pick < 85 {
                        let id = mine[(n as usize) % mine.len()];
                        format!("SELECT * FROM soak.events WHERE id = {id}")
                    } else if pick < 98 {
                        "SELECT count(*), sum(score) FROM soak.events".to_string()
                    } else {
                        "FLUSH TABLE soak.events".to_string()
                    };
                    let t = Instant::now();
                    let failed = post(&agent, port, &me, &sql).is_err();
                    let end = Instant::now();
                    samples.push(Sample {
                        bucket: bucket_of(end),
                        latency: end - t,
                        failed,
                    });
                }
                samples
            })
        })
        .collect();

    // The main thread samples RSS and starts an online backup once per bucket.
    let mut rss = vec![0u64; buckets];
    let mut backups_started = 0u64;
    let mut backup_errors = 0u64;
    let admin = agent();
    for (b, slot) in rss.iter_mut().enumerate() {
        let sql = format!("BACKUP DATABASE TO '{}' DETACHED", repo.display());
        match post(&admin, port, "root", &sql) {
            Ok(_) => backups_started += 1,
            Err(e) => {
                backup_errors += 1;
                eprintln!("soak: backup {b}: {e}");
            }
        }
        let end = started + Duration::from_secs((b as u64 + 1) * plan.bucket_seconds);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(500));
            *slot = (*slot).max(rss_kib(pid));
        }
        eprintln!("soak: bucket {b} done, RSS {} MiB", *slot / 1024);
    }
    stop.store(true, Ordering::Relaxed);
    let mut per_bucket: Vec<(Vec<Duration>, u64)> = vec![(Vec::new(), 0); buckets];
    for h in clients {
        for s in h.join().map_err(|_| "client panicked".to_string())? {
            let (lat, errors) = &mut per_bucket[s.bucket];
            lat.push(s.latency);
            *errors += u64::from(s.failed);
        }
    }
    let backups = post(
        &admin,
        port,
        "root",
        "SELECT status, count(*) AS n FROM system.jobs WHERE job_type = 'backup' GROUP BY status",
    )?;
    drop(kalamd);

    println!(
        "  {:>6} {:>9} {:>7} {:>10} {:>10} {:>9}",
        "minute", "requests", "errors", "p50 ms", "p99 ms", "RSS MiB"
    );
    let mut rows = Vec::new();
    let mut total_errors = 0;
    for (b, (mut lat, errors)) in per_bucket.into_iter().enumerate() {
        lat.sort();
        total_errors += errors;
        let (p50, p99) = (
            micros(percentile(&lat, 50.0)) / 1000.0,
            micros(percentile(&lat, 99.0)) / 1000.0,
        );
        let rss_mib = rss[b] / 1024;
        println!(
            "  {b:>6} {:>9} {errors:>7} {p50:>10.2} {p99:>10.2} {rss_mib:>9}",
            lat.len()
        );
        rows.push(json!({"bucket": b, "requests": lat.len(), "errors": errors,
            "p50_ms": p50, "p99_ms": p99, "rss_mib": rss_mib}));
    }
    emit(
        "soak",
        json!({
            "clients": plan.clients,
            "seconds": plan.seconds,
            "bucket_seconds": plan.bucket_seconds,
            "errors": total_errors,
            "backups_started": backups_started,
            "backup_errors": backup_errors,
            "backup_jobs": backups["results"][0]["rows"],
            "buckets": rows,
        }),
    );
    Ok(())
}
