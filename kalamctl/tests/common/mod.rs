//! Helpers for tests that drive the real `kalamctl` binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The JSON on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn kalamctl(args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args(args)
        .env_remove("KALAMDB_DATA_DIR")
        .output()
        .expect("spawn kalamctl")
        .into()
}

/// A fresh, initialised data directory.
pub struct Db {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Db {
    pub fn new() -> Db {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let run = kalamctl(&["init", "--data-dir", dir.to_str().expect("utf8")]);
        assert_eq!(run.code, 0, "init failed: {}", run.stderr);
        Db { _tmp: tmp, dir }
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().expect("utf8 path")
    }

    /// Runs SQL as admin (or as `user`) with JSON output.
    pub fn sql_as(&self, user: Option<&str>, sql: &str) -> Run {
        let mut args = vec!["sql", "--data-dir", self.path(), "--format", "json"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.push(sql);
        kalamctl(&args)
    }

    /// Runs SQL as admin and expects success; returns the `results` array.
    pub fn ok(&self, sql: &str) -> Vec<Value> {
        self.ok_as(None, sql)
    }

    pub fn ok_as(&self, user: Option<&str>, sql: &str) -> Vec<Value> {
        let run = self.sql_as(user, sql);
        assert_eq!(run.code, 0, "`{sql}` failed: {}", run.stderr);
        run.json()["results"]
            .as_array()
            .cloned()
            .expect("results array")
    }

    /// The rows of the last statement's result.
    pub fn rows(&self, sql: &str) -> Vec<Value> {
        self.rows_as(None, sql)
    }

    pub fn rows_as(&self, user: Option<&str>, sql: &str) -> Vec<Value> {
        let results = self.ok_as(user, sql);
        results
            .last()
            .and_then(|r| r["rows"].as_array().cloned())
            .expect("rows")
    }

    /// Expects failure with `code`, one stderr line containing `needle`.
    pub fn fails(&self, sql: &str, code: i32, needle: &str) -> Run {
        let run = self.sql_as(None, sql);
        assert_eq!(
            run.code, code,
            "`{sql}`: expected exit {code}, got {}: {}",
            run.code, run.stderr
        );
        assert!(
            run.stderr.contains(needle),
            "`{sql}`: stderr lacks '{needle}': {}",
            run.stderr
        );
        assert_eq!(
            run.stderr.trim_end().lines().count(),
            1,
            "want one stderr line: {}",
            run.stderr
        );
        run
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }
}

#[allow(unused_imports)]
pub use kalamdb_fixtures::tree::{dirs_under, files_under, snapshot};

/// Runs kalamctl with extra environment variables.
pub fn kalamctl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kalamctl"));
    cmd.args(args).env_remove("KALAMDB_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn kalamctl").into()
}

impl Db {
    /// Runs a kalamctl command on this directory with `--format json`; expects exit 0.
    pub fn cmd_ok(&self, args: &[&str]) -> Value {
        let run = self.cmd(args);
        assert_eq!(run.code, 0, "{args:?} failed: {}", run.stderr);
        run.json()
    }

    pub fn cmd(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", self.path(), "--format", "json"]);
        kalamctl(&all)
    }

    /// The column families in the RocksDB database (opened read-only).
    pub fn column_families(&self) -> Vec<String> {
        let storage = kalamdb_store::Storage::open(
            &self.dir.join("rocksdb"),
            kalamdb_store::OpenMode::ReadOnly,
        )
        .expect("open rocksdb read-only");
        storage.column_families().expect("list column families")
    }
}

/// Starts kalamctl with `args`, kills it (-9) after `delay_ms`, and returns how it ended: a
/// run that finished first exits as usual.
pub fn kalamctl_killed_after(args: &[&str], delay_ms: u64) -> ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args(args)
        .env_remove("KALAMDB_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kalamctl");
    std::thread::sleep(Duration::from_millis(delay_ms));
    let _ = child.kill();
    child.wait().expect("wait for kalamctl")
}

/// Starts kalamctl with `args` and `env`, sends it `signal` after `delay_ms`, and returns how
/// it ended (its output captured).
pub fn kalamctl_signalled_after(
    args: &[&str],
    env: &[(&str, &str)],
    signal: i32,
    delay_ms: u64,
) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kalamctl"));
    cmd.args(args)
        .env_remove("KALAMDB_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn kalamctl");
    std::thread::sleep(Duration::from_millis(delay_ms));
    // SAFETY: kill(2) on our own child with a valid signal number.
    let pid = i32::try_from(child.id()).expect("pid");
    unsafe {
        libc::kill(pid, signal);
    }
    child.wait_with_output().expect("wait for kalamctl").into()
}
