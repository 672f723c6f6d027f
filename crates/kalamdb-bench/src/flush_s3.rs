//! Object storage on a real S3-compatible server on loopback (moto's):
//! - flush of a user table to an S3 location against the same flush to a local directory,
//!   and against a floor: uploading the Parquet files that local flush wrote straight to the
//!   same server with the same client and part size, which is what the server can take;
//! - a backup of that flushed database into an S3 repository against one into a local
//!   directory repository.
//!
//! Variants interleave, `repeat` rounds; each trial on a fresh database and a fresh server.

use std::time::Instant;

use kalamdb_core::Engine;
use kalamdb_core::cold::object::{self, Profile};
use kalamdb_fixtures::s3::S3Server;

use crate::datagen::filled_wide_user_table;
use crate::report::{emit, median};

pub struct Plan {
    pub mb: usize,
    pub payload: usize,
    pub users: usize,
    pub repeat: usize,
}

/// One trial: a fresh database holding `mb` of rows, on `storage`.
async fn filled(plan: &Plan, storage: Option<&str>) -> Result<(tempfile::TempDir, Engine), String> {
    let setup = if storage.is_some() {
        "CREATE STORAGE lake TYPE s3 PATH 's3://bench/v1' CREDENTIALS 'bench'"
    } else {
        ""
    };
    let (tmp, engine, _) =
        filled_wide_user_table(plan.mb, plan.payload, plan.users, storage, setup).await?;
    Ok((tmp, engine))
}

fn server() -> S3Server {
    let s3 = S3Server::start();
    s3.create_bucket("bench");
    object::add_profile(
        "bench",
        Profile {
            access_key_id: "bench".into(),
            secret_access_key: "bench".into(),
            session_token: None,
            region: Some("us-east-1".into()),
            endpoint: Some(s3.endpoint()),
            allow_http: true,
            timeout_seconds: 300,
        },
    );
    s3
}

/// Seconds to back `engine` up into `repo`.
fn backup(engine: &Engine, repo: kalamdb_backup::RepoLocation) -> Result<f64, String> {
    let started = Instant::now();
    tokio::task::block_in_place(|| {
        kalamdb_backup::begin(
            engine,
            kalamdb_backup::CreateOptions {
                repo,
                ..kalamdb_backup::CreateOptions::default()
            },
        )
        .and_then(|s| s.run())
        .map_err(|e| e.to_string())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// What one round of the local variant measured.
struct Local {
    flush_secs: f64,
    files: Vec<std::path::PathBuf>,
    bytes: u64,
    backup_dir_secs: f64,
    backup_s3_secs: f64,
}

/// Seconds to flush to a local directory, the files it wrote and their bytes; then seconds
/// to back the database up into a local repository and into an S3 one (in `order`).
async fn local(plan: &Plan, s3_first: bool) -> Result<Local, String> {
    let (tmp, engine) = filled(plan, None).await?;
    let started = Instant::now();
    let report = engine
        .flush_table("b", "t")
        .await
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    engine.set_offline();
    let dir_repo = || {
        backup(
            &engine,
            kalamdb_backup::RepoLocation::Dir(tmp.path().join("repo")),
        )
    };
    let s3_repo = || {
        let _s3 = server();
        backup(
            &engine,
            kalamdb_backup::RepoLocation::S3 {
                url: "s3://bench/repo".into(),
                credentials: Some("bench".into()),
            },
        )
    };
    let (backup_dir_secs, backup_s3_secs) = if s3_first {
        let s = s3_repo()?;
        (dir_repo()?, s)
    } else {
        let d = dir_repo()?;
        (d, s3_repo()?)
    };
    let files: Vec<std::path::PathBuf> =
        kalamdb_fixtures::tree::files_under(&tmp.path().join("data/storage"))
            .into_iter()
            .map(|f| tmp.path().join("data/storage").join(f))
            .collect();
    // Kept for the floor: copied out of the database that is about to go.
    let keep = tempfile::tempdir_in(std::env::var("KALAMDB_BENCH_DIR").unwrap_or(".".into()))
        .map_err(|e| e.to_string())?
        .keep();
    let mut kept = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let to = keep.join(format!("{i}.parquet"));
        std::fs::copy(f, &to).map_err(|e| e.to_string())?;
        kept.push(to);
    }
    drop(engine);
    Ok(Local {
        flush_secs: secs,
        files: kept,
        bytes: report.bytes,
        backup_dir_secs,
        backup_s3_secs,
    })
}

/// Seconds to flush the same rows to the S3 location.
async fn to_s3(plan: &Plan) -> Result<(f64, u64), String> {
    let _s3 = server();
    let (_tmp, engine) = filled(plan, Some("lake")).await?;
    let started = Instant::now();
    let report = engine
        .flush_table("b", "t")
        .await
        .map_err(|e| e.to_string())?;
    Ok((started.elapsed().as_secs_f64(), report.bytes))
}

/// Seconds to upload `files` to a fresh server, one after another, with the engine's client.
fn floor(files: &[std::path::PathBuf]) -> Result<f64, String> {
    let _s3 = server();
    let bucket = object::bucket("bench", Some("bench"), "bench").map_err(|e| e.to_string())?;
    let started = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).map_err(|e| e.to_string())?;
        let mut w = bucket.writer(object::Key::from(format!("floor/{i}.parquet")));
        std::io::Write::write_all(&mut w, &bytes).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed().as_secs_f64())
}

pub async fn run(plan: Plan) -> Result<(), String> {
    let (mut l, mut s, mut f) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bd, mut bs) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for r in 0..plan.repeat.max(1) {
        let round = local(&plan, r % 2 == 1).await?;
        bytes = round.bytes;
        let (secs, files) = (round.flush_secs, round.files);
        bd.push(round.backup_dir_secs);
        bs.push(round.backup_s3_secs);
        // Alternate which of the two S3 variants goes first.
        if r % 2 == 0 {
            s.push(to_s3(&plan).await?.0);
            f.push(floor(&files)?);
        } else {
            f.push(floor(&files)?);
            s.push(to_s3(&plan).await?.0);
        }
        l.push(secs);
        for file in &files {
            let _ = std::fs::remove_file(file);
        }
        if let Some(dir) = files.first().and_then(|f| f.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
    }
    let (l, s, f) = (median(&l), median(&s), median(&f));
    let (bd, bs) = (median(&bd), median(&bs));
    let mib = bytes as f64 / f64::from(1 << 20);
    println!(
        "flush-s3: {} rounds, {} MB of rows, {} users, {mib:.0} MiB of Parquet",
        plan.repeat, plan.mb, plan.users
    );
    println!("  local directory   {l:>7.2} s  {:>7.1} MiB/s", mib / l);
    println!("  S3 (loopback)     {s:>7.2} s  {:>7.1} MiB/s", mib / s);
    println!(
        "  upload floor      {f:>7.2} s  {:>7.1} MiB/s (the same files, straight up)",
        mib / f
    );
    println!("  flush S3/local {:.2}, S3/floor {:.2}", s / l, s / f);
    println!("  backup to a directory  {bd:>7.2} s");
    println!(
        "  backup to S3           {bs:>7.2} s   S3/directory {:.2}",
        bs / bd
    );
    emit(
        "flush-s3",
        serde_json::json!({
            "mb": plan.mb, "parquet_mib": mib,
            "local_secs": l, "s3_secs": s, "floor_secs": f,
            "ratio_s3_to_local": s / l, "ratio_s3_to_floor": s / f,
            "backup_dir_secs": bd, "backup_s3_secs": bs, "ratio_backup_s3_to_dir": bs / bd,
        }),
    );
    Ok(())
}
