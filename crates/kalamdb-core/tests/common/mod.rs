//! An engine in this process over a fresh data directory, driven by SQL as `kalamctl sql`
//! drives it (offline, admin unless a user is named): the engine's behaviour tested without
//! a process per statement. The binaries' own behaviour is tested end to end in their crates.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kalamdb_core::{Access, CoreError, Engine, Session};
use serde_json::Value;

pub struct Db {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    engine: Option<Engine>,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    pub fn new() -> Db {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        drop(Engine::init(&dir, "test").expect("init"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut db = Db {
            _tmp: tmp,
            dir,
            engine: None,
            runtime,
        };
        db.reopen();
        db
    }

    fn reopen(&mut self) {
        let engine = Engine::open_with(&self.dir, Access::ReadWrite, "test", true).expect("open");
        engine.set_offline();
        self.engine = Some(engine);
    }

    /// Closes the engine, runs `f` on the closed directory, and opens it again.
    pub fn closed<T>(&mut self, f: impl FnOnce(&Path) -> T) -> T {
        self.engine = None;
        let out = f(&self.dir);
        self.reopen();
        out
    }

    pub fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("open")
    }

    /// Runs SQL as admin, or as `user`; the results as JSON, as `kalamctl sql` prints them.
    pub fn sql_as(&self, user: Option<&str>, sql: &str) -> Result<Vec<Value>, CoreError> {
        let session = match user {
            Some(id) => Session::user(id),
            None => Session::admin(),
        };
        let results = self
            .runtime
            .block_on(self.engine().execute(&session, sql))?;
        Ok(results
            .iter()
            .map(|r| serde_json::to_value(r).expect("a result is JSON"))
            .collect())
    }

    pub fn ok(&self, sql: &str) -> Vec<Value> {
        self.ok_as(None, sql)
    }

    pub fn ok_as(&self, user: Option<&str>, sql: &str) -> Vec<Value> {
        self.sql_as(user, sql)
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
    }

    /// The rows of the last statement's result.
    pub fn rows(&self, sql: &str) -> Vec<Value> {
        self.rows_as(None, sql)
    }

    pub fn rows_as(&self, user: Option<&str>, sql: &str) -> Vec<Value> {
        self.ok_as(user, sql)
            .last()
            .and_then(|r| r["rows"].as_array().cloned())
            .expect("rows")
    }

    /// Expects failure as `user` whose kind maps to exit `code`, naming `needle`.
    pub fn fails_as(&self, user: Option<&str>, sql: &str, code: u8, needle: &str) -> CoreError {
        let err = match self.sql_as(user, sql) {
            Ok(r) => panic!("`{sql}` should fail, got {r:?}"),
            Err(e) => e,
        };
        assert_eq!(
            err.kind().exit_code(),
            code,
            "`{sql}`: expected exit {code}: {err}"
        );
        assert!(
            err.to_string().contains(needle),
            "`{sql}`: the error lacks '{needle}': {err}"
        );
        err
    }

    pub fn fails(&self, sql: &str, code: u8, needle: &str) -> CoreError {
        self.fails_as(None, sql, code, needle)
    }

    /// The default storage location's directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }
}

#[allow(unused_imports)]
pub use kalamdb_fixtures::tree::files_under;
