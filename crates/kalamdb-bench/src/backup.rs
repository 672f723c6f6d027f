//! Backup and restore against `cp -r` of the same data directory and against restic (the tool
//! an operator would pick instead: `restic backup` of the directory into a local repository,
//! `restic restore`), in the same run; and an incremental backup after a 1% change, against
//! the full one.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kalamdb_backup::{self as backup, CreateOptions, RestoreOptions};
use kalamdb_core::{Access, Engine};

use crate::datagen::{create_wide_user_table, engine_with_namespace_b, fill_user_table};
use crate::report::emit;
use crate::verify::dir_bytes;

pub struct Plan {
    pub rows: usize,
    pub users: usize,
    pub payload: usize,
    pub repeat: usize,
    /// Tables the hot half is spread over; the 1% change goes into the first.
    pub hot_tables: usize,
}

pub async fn run(plan: Plan) -> Result<(), String> {
    let tmp = tempfile::tempdir_in(std::env::var("KALAMDB_BENCH_DIR").unwrap_or(".".into()))
        .map_err(|e| e.to_string())?;
    let data = tmp.path().join("data");
    {
        let engine = engine_with_namespace_b(&data).await?;
        // Half the rows flushed to Parquet, half hot in RocksDB (in one table, or spread
        // over several).
        create_wide_user_table(&engine, "b", "cold", plan.payload).await?;
        let half = plan.rows / 2;
        fill_user_table(&engine, "b", "cold", 0, half, plan.users, plan.payload)?;
        engine
            .flush_table("b", "cold")
            .await
            .map_err(|e| e.to_string())?;
        let tables = plan.hot_tables.max(1);
        for i in 0..tables {
            let name = hot_table(i);
            create_wide_user_table(&engine, "b", &name, plan.payload).await?;
            fill_user_table(
                &engine,
                "b",
                &name,
                0,
                half / tables,
                plan.users,
                plan.payload,
            )?;
        }
        engine
            .storage()
            .flush_memtables()
            .map_err(|e| e.to_string())?;
    }
    // Opened once before measuring, so RocksDB has replayed and retired the load's WAL and
    // every round copies the same kind of directory.
    let engine =
        Engine::open(&data, Access::ReadWrite, "kalamdb-bench").map_err(|e| e.to_string())?;
    engine.set_offline();
    let options = |repo: &Path| CreateOptions {
        repo: kalamdb_backup::RepoLocation::Dir(repo.to_path_buf()),
        ..CreateOptions::default()
    };
    let create = |engine: &Engine, repo: &Path| -> Result<backup::CreateReport, String> {
        // A backup blocks (it waits for flushes to finish): off the async workers.
        tokio::task::block_in_place(|| {
            backup::begin(engine, options(repo))
                .and_then(|s| s.run())
                .map_err(|e| e.to_string())
        })
    };
    // One untimed backup first: its checkpoint flushes, so RocksDB deletes the WAL files the
    // load retired and cp -r copies the same live files as every round's backup.
    let warm = tmp.path().join("warm");
    create(&engine, &warm)?;
    remove(&warm);
    let size = dir_bytes(&data);
    println!(
        "backup: {} rows of ~{} bytes (half in Parquet), {:.0} MiB on disk",
        plan.rows,
        60 + plan.payload,
        size as f64 / (1u64 << 20) as f64
    );
    let mut mib_per_s = (vec![], vec![], vec![]);
    let (mut cp, mut cp_sync, mut full, mut restore, mut incr) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut restic_backup, mut restic_restore) = (vec![], vec![]);
    let (mut restore_copy, mut restore_open, mut restore_check) = (vec![], vec![], vec![]);
    for round in 0..plan.repeat.max(1) {
        // A compaction the last round's change started would delete files under cp -r.
        settle(&engine)?;
        let mib = dir_bytes(&data) as f64 / (1u64 << 20) as f64;
        let copy = tmp.path().join("copy");
        warm_memory(tmp.path(), size)?;
        cp.push(timed(|| cp_r(&data, &copy))?);
        remove(&copy);
        // cp -r does not make its copy durable; a backup syncs every file it writes.
        warm_memory(tmp.path(), size)?;
        cp_sync.push(timed(|| {
            cp_r(&data, &copy)?;
            sync_fs(&copy)
        })?);
        remove(&copy);

        // restic, into a fresh local repository (its init untimed), then restored.
        let restic_repo = tmp.path().join("restic");
        restic(&restic_repo, &["init"])?;
        warm_memory(tmp.path(), size)?;
        restic_backup.push(timed(|| {
            restic(
                &restic_repo,
                &["backup", "--quiet", &data.display().to_string()],
            )
        })?);
        let restic_target = tmp.path().join("restic-restored");
        warm_memory(tmp.path(), size)?;
        restic_restore.push(timed(|| {
            restic(
                &restic_repo,
                &[
                    "restore",
                    "latest",
                    "--quiet",
                    "--target",
                    &restic_target.display().to_string(),
                ],
            )?;
            sync_fs(&restic_target)
        })?);
        remove(&restic_repo);
        remove(&restic_repo.with_extension("cache"));
        remove(&restic_target);

        let repo = tmp.path().join("repo");
        let mut report = None;
        warm_memory(tmp.path(), size)?;
        full.push(timed(|| {
            report = Some(create(&engine, &repo)?);
            Ok(())
        })?);

        let restored = tmp.path().join("restored");
        // When the copy (with its SHA-256 checks and syncs) last reported, and when the
        // verify-and-count pass began: between them, opening the copy and re-pointing its
        // locations.
        let copied: Arc<Mutex<Option<Instant>>> = Arc::default();
        let checking: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (seen_copy, seen) = (Arc::clone(&copied), Arc::clone(&checking));
        warm_memory(tmp.path(), size)?;
        let started = Instant::now();
        restore.push(timed(|| {
            backup::restore(&RestoreOptions {
                repo: kalamdb_backup::RepoLocation::Dir(repo.clone()),
                to: restored.clone(),
                observer: Some(Arc::new(move |t: backup::Transfer| {
                    if t.phase == backup::Phase::Copying
                        && let Ok(mut last) = seen_copy.lock()
                    {
                        *last = Some(Instant::now());
                    }
                    if t.phase == backup::Phase::Verifying
                        && let Ok(mut first) = seen.lock()
                    {
                        first.get_or_insert_with(Instant::now);
                    }
                })),
                ..RestoreOptions::default()
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
        })?);
        let ended = Instant::now();
        let check_began = checking.lock().ok().and_then(|c| *c).unwrap_or(ended);
        let copy_ended = copied.lock().ok().and_then(|c| *c).unwrap_or(check_began);
        restore_copy.push(copy_ended.duration_since(started));
        restore_open.push(check_began.duration_since(copy_ended));
        restore_check.push(ended.duration_since(check_began));
        remove(&restored);

        // A 1% change: new rows worth 1% of the data, in the (first) hot table.
        let first = (plan.rows as u64) * (round as u64 + 1);
        fill_user_table(
            &engine,
            "b",
            &hot_table(0),
            first,
            plan.rows / 100,
            plan.users,
            plan.payload,
        )?;
        let mut second: Option<backup::CreateReport> = None;
        warm_memory(tmp.path(), size)?;
        incr.push(timed(|| {
            second = Some(create(&engine, &repo)?);
            Ok(())
        })?);
        remove(&repo);
        let last = |v: &Vec<Duration>| v.last().map_or(1.0, |d| d.as_secs_f64());
        mib_per_s.0.push(mib / last(&cp));
        // The backup holds the live files only (RocksDB may still keep retired WAL files in
        // the directory, which cp copies): its rates are of what it backed up.
        let backed_up = report
            .as_ref()
            .map_or(0.0, |r| r.total_bytes as f64 / (1u64 << 20) as f64);
        mib_per_s.1.push(backed_up / last(&full));
        mib_per_s.2.push(backed_up / last(&restore));
        if let (Some(r), Some(i)) = (report, second) {
            println!(
                "  round {round}: {mib:.0} MiB in the data directory; full: {} files {:.0} MiB (flushes held off {} ms, counting {} ms); incremental: wrote {:.1} MiB, read {:.1} MiB, counting {} ms ({} of {} tables' counts kept)",
                r.files,
                r.total_bytes as f64 / (1u64 << 20) as f64,
                r.gate_ms,
                r.count_ms,
                i.new_bytes as f64 / (1u64 << 20) as f64,
                i.bytes_read as f64 / (1u64 << 20) as f64,
                i.count_ms,
                i.counts_kept,
                i.tables
            );
        }
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (cp, cp_sync, full, restore, incr) = (
        med(&mut cp),
        med(&mut cp_sync),
        med(&mut full),
        med(&mut restore),
        med(&mut incr),
    );
    let (rb, rr) = (med(&mut restic_backup), med(&mut restic_restore));
    let (restore_copy, restore_open, restore_check) = (
        med(&mut restore_copy),
        med(&mut restore_open),
        med(&mut restore_check),
    );
    let medf = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (cp_rate, full_rate, restore_rate) = (
        medf(&mut mib_per_s.0),
        medf(&mut mib_per_s.1),
        medf(&mut mib_per_s.2),
    );
    println!(
        "  cp -r                 {:>8.0} ms  ({cp_rate:.0} MiB/s)",
        cp * 1e3
    );
    println!("  cp -r, then sync      {:>8.0} ms", cp_sync * 1e3);
    println!(
        "  backup create (full)  {:>8.0} ms  ({full_rate:.0} MiB/s)  ratio to cp -r {:.2}, to cp -r + sync {:.2}",
        full * 1e3,
        full / cp,
        full / cp_sync
    );
    println!(
        "  backup restore        {:>8.0} ms  ({restore_rate:.0} MiB/s)  ratio to cp -r {:.2}, to cp -r + sync {:.2}",
        restore * 1e3,
        restore / cp,
        restore / cp_sync
    );
    println!(
        "    of which: copy {:.0} ms; open and re-point {:.0} ms; verify and count {:.0} ms",
        restore_copy * 1e3,
        restore_open * 1e3,
        restore_check * 1e3
    );
    println!(
        "  incremental after 1%  {:>8.0} ms  ({:.3} of the full backup's time)",
        incr * 1e3,
        incr / full
    );
    println!(
        "  restic backup         {:>8.0} ms  kalamctl/restic {:.2}",
        rb * 1e3,
        full / rb
    );
    println!(
        "  restic restore        {:>8.0} ms  kalamctl/restic {:.2}",
        rr * 1e3,
        restore / rr
    );
    emit(
        "backup",
        serde_json::json!({
            "rows": plan.rows, "users": plan.users, "payload_bytes": plan.payload,
            "repeat": plan.repeat, "data_bytes": size, "hot_tables": plan.hot_tables.max(1),
            "cp_ms": cp * 1e3, "cp_sync_ms": cp_sync * 1e3, "full_ms": full * 1e3, "restore_ms": restore * 1e3,
            "restore_copy_ms": restore_copy * 1e3, "restore_open_ms": restore_open * 1e3,
            "restore_check_ms": restore_check * 1e3,
            "incremental_ms": incr * 1e3,
            "cp_mib_per_s": cp_rate, "full_mib_per_s": full_rate, "restore_mib_per_s": restore_rate,
            "ratio_full_to_cp": full / cp, "ratio_restore_to_cp": restore / cp,
            "ratio_full_to_cp_sync": full / cp_sync, "ratio_restore_to_cp_sync": restore / cp_sync,
            "ratio_incremental_to_full": incr / full,
            "restic_backup_ms": rb * 1e3, "restic_restore_ms": rr * 1e3,
            "ratio_full_to_restic_backup": full / rb, "ratio_restore_to_restic_restore": restore / rr,
        }),
    );
    Ok(())
}

fn timed(f: impl FnOnce() -> Result<(), String>) -> Result<Duration, String> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}

/// Waits (up to a minute) until RocksDB has no flush or compaction running or due.
fn settle(engine: &kalamdb_core::Engine) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine
        .storage()
        .background_work_pending()
        .map_err(|e| e.to_string())?
    {
        if Instant::now() > deadline {
            return Err("RocksDB's background work did not settle within a minute".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `restic -r REPO ARGS`, with a fixed password (the repository is scratch).
fn restic(repo: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", "kalamdb-bench")
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"))
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "restic: {e}; install it (Debian: apt-get install restic; scripts/setup.sh does)"
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "restic {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn cp_r(from: &Path, to: &Path) -> Result<(), String> {
    command("cp", &[from.as_os_str(), to.as_os_str()], "-r")
}

/// `sync -f`: flushes the filesystem holding `dir`, as a backup's per-file syncs do.
fn sync_fs(dir: &Path) -> Result<(), String> {
    command("sync", &[dir.as_os_str()], "-f")
}

fn command(program: &str, paths: &[&std::ffi::OsStr], flag: &str) -> Result<(), String> {
    let status = Command::new(program)
        .arg(flag)
        .args(paths)
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {flag} failed: {status}"))
    }
}

/// Writes and removes a file of `bytes` under `dir`, untimed, just before a timed variant.
/// This virtual machine hands memory the guest freed back to its host within seconds, and the
/// first write into such memory costs ~2 s of system time per GiB (measured with `dd` after a
/// 6 s pause: 2.0-3.0 s against 0.3 s right after a removal). Without this, whichever variant
/// wrote into freshly returned memory paid it: every variant now writes into memory just
/// freed, as `cp -r` did.
fn warm_memory(dir: &Path, bytes: u64) -> Result<(), String> {
    use std::io::Write as _;
    let path = dir.join("warm-memory");
    let chunk = vec![1u8; 1 << 20];
    let mut file = std::fs::File::create(&path).map_err(|e| format!("warm: {e}"))?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.write_all(&chunk[..n])
            .map_err(|e| format!("warm: {e}"))?;
        left -= n as u64;
    }
    drop(file);
    std::fs::remove_file(&path).map_err(|e| format!("warm: {e}"))
}

fn remove(dir: &Path) {
    // Between rounds only; a leftover would show as a failure of the next round.
    let _ = std::fs::remove_dir_all(dir);
}

/// The name of the `i`th hot table: `hot` alone, as before there could be several.
fn hot_table(i: usize) -> String {
    if i == 0 {
        "hot".to_string()
    } else {
        format!("hot{i}")
    }
}
