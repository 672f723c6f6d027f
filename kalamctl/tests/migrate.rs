//! `kalamctl migrate` and `kalamctl upgrade-check` on real legacy directories written by the
//! fixture writer, exactly as the original engine laid them out: the directory an operator
//! passes is the RocksDB directory itself.

mod common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use common::{Run, kalamctl, kalamctl_env, snapshot};
use kalamdb_core::data_dir::{DataDir, DirLock};
use kalamdb_fixtures::{ALICE, BOB, EXPECTED, Generation};
use kalamdb_store::{OpenMode, Storage};
use serde_json::Value;

const GENERATIONS: [(&str, Generation); 3] = [
    ("g1", Generation::G1),
    ("g2", Generation::G2),
    ("g3", Generation::G3),
];

/// A legacy directory in a temporary folder.
struct Legacy {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Legacy {
    fn new(generation: Generation) -> Legacy {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        kalamdb_fixtures::write(generation, &dir).expect("write fixture");
        Legacy { _tmp: tmp, dir }
    }
    /// Already nested as a data directory (`dir/rocksdb`), as if moved by hand.
    fn nested(generation: Generation) -> Legacy {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        kalamdb_fixtures::write_nested(generation, &dir).expect("write fixture");
        Legacy { _tmp: tmp, dir }
    }
    fn path(&self) -> &str {
        self.dir.to_str().expect("utf8")
    }
    /// The RocksDB directory as the directory stands: `rocksdb/` once nested, else itself.
    fn db(&self) -> PathBuf {
        let nested = self.dir.join("rocksdb");
        if nested.join("CURRENT").is_file() {
            nested
        } else {
            self.dir.clone()
        }
    }
    fn migrate(&self, args: &[&str]) -> Run {
        self.migrate_env(args, &[])
    }
    fn migrate_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        all.extend(["--data-dir", self.path(), "--format", "json"]);
        kalamctl_env(&all, env)
    }
    fn sql(&self, user: Option<&str>, sql: &str) -> Vec<Value> {
        self.sql_with(&[], user, sql)
    }
    /// [`Legacy::sql`] with `extra` arguments (`--config F`).
    fn sql_with(&self, extra: &[&str], user: Option<&str>, sql: &str) -> Vec<Value> {
        let mut args = vec!["sql", "--data-dir", self.path(), "--format", "json"];
        args.extend_from_slice(extra);
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.push(sql);
        let run = kalamctl(&args);
        assert_eq!(run.code, 0, "`{sql}`: {}", run.stderr);
        // A statement without rows (DDL, INSERT, FLUSH) gives none.
        run.json()["results"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["rows"].as_array().cloned())
            .unwrap_or_default()
    }
    /// Every key and value of every column family, and every file under its `conf/`.
    fn dump(&self) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
        let storage = Storage::open(&self.db(), OpenMode::ReadOnly).expect("open read-only");
        let mut out = BTreeMap::new();
        for cf in storage.column_families().expect("cfs") {
            let mut kv = BTreeMap::new();
            storage
                .scan_prefix(&cf, b"", |k, v| {
                    kv.insert(k.to_vec(), v.to_vec());
                    Ok(ControlFlow::Continue(()))
                })
                .expect("scan");
            out.insert(cf, kv);
        }
        let conf = self.db().join("conf");
        let files: BTreeMap<Vec<u8>, Vec<u8>> = snapshot(&conf)
            .into_iter()
            .map(|(f, b)| (f.into_bytes(), b))
            .collect();
        out.insert("<conf files>".into(), files);
        out
    }
    /// [`Legacy::dump`] without what records wall-clock time: the marker, the migration's
    /// history and its own job row.
    fn outcome(&self) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut d = self.dump();
        if let Some(default) = d.get_mut("default") {
            default.retain(|k, _| !k.starts_with(b"kalamdb:"));
        }
        if let Some(jobs) = d.get_mut("system_jobs") {
            jobs.retain(|_, v| {
                serde_json::from_slice::<Value>(v).map_or(true, |j| j["job_type"] != "migration")
            });
        }
        d
    }
    fn put_raw(&self, cf: &str, key: &str, value: &[u8]) {
        let storage = Storage::open(&self.db(), OpenMode::ReadWrite).expect("open");
        storage.create_cf(cf).expect("cf");
        storage.put(cf, key.as_bytes(), value).expect("put");
    }
}

/// `kalamctl migrate CMD --data-dir DIR`, human output.
fn migrate_at(cmd: &str, dir: &Path) -> Run {
    kalamctl(&["migrate", cmd, "--data-dir", dir.to_str().expect("utf8")])
}

fn names(rows: &[Value], column: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[column].as_str().unwrap_or_default().to_string())
        .collect()
}

fn count(rows: &[Value]) -> u64 {
    rows.first()
        .and_then(|r| r.as_object())
        .and_then(|o| o.values().next())
        .and_then(Value::as_u64)
        .expect("a count")
}

#[test]
fn every_generation_migrates_to_what_the_fixture_wrote() {
    for (name, generation) in GENERATIONS {
        let db = Legacy::new(generation);
        let data_before: BTreeMap<_, _> = db
            .dump()
            .into_iter()
            .filter(|(cf, _)| cf.contains("_table:") && !cf.starts_with("system_table:"))
            .collect();

        let status = db.migrate(&["status"]);
        assert_eq!(status.code, 0, "{name}: {}", status.stderr);
        let status = status.json();
        assert_eq!(status["generation"], name);
        assert_eq!(status["state"], "pending");
        assert!(status["format_version"].is_null());
        assert_eq!(status["layout"]["from"], "original", "{name}: {status}");

        let applied = db.migrate(&["apply"]);
        assert_eq!(applied.code, 0, "{name}: {}", applied.stderr);
        let applied = applied.json();
        assert_eq!(applied["state"], "applied");
        let repaired: Vec<String> = applied["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .flat_map(|s| s["repaired"].as_array().cloned().unwrap_or_default())
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect();
        for defect in [
            "old_drafts",
            "Parquet file",
            "running; marked failed",
            "live quer",
        ] {
            assert!(
                repaired.iter().any(|r| r.contains(defect)),
                "{name}: no repair mentions {defect}: {repaired:#?}"
            );
        }

        // The same namespaces, tables, users, jobs and rows the fixture wrote.
        let ns = db.sql(
            None,
            "SELECT name, table_count FROM system.namespaces ORDER BY name",
        );
        assert_eq!(names(&ns, "name"), EXPECTED.namespaces, "{name}");
        let tables = db.sql(
            None,
            "SELECT namespace, table_name, table_type FROM system.tables ORDER BY namespace, table_name",
        );
        let got: Vec<(String, String)> = tables
            .iter()
            .map(|t| {
                (
                    format!(
                        "{}.{}",
                        t["namespace"].as_str().unwrap_or(""),
                        t["table_name"].as_str().unwrap_or("")
                    ),
                    t["table_type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = EXPECTED
            .tables
            .iter()
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect();
        assert_eq!(got, want, "{name}");
        let users = db.sql(None, "SELECT username FROM system.users ORDER BY username");
        assert_eq!(names(&users, "username"), EXPECTED.usernames, "{name}");
        let jobs = db.sql(
            None,
            "SELECT job_id, status FROM system.jobs WHERE job_type <> 'migration'",
        );
        assert_eq!(jobs.len(), EXPECTED.jobs, "{name}: {jobs:?}");
        assert_eq!(
            jobs.iter().filter(|j| j["status"] == "failed").count(),
            1 + EXPECTED.running_jobs,
            "{name}: the job left running is now failed: {jobs:?}"
        );
        let migration = db.sql(
            None,
            "SELECT status FROM system.jobs WHERE job_type = 'migration'",
        );
        assert_eq!(names(&migration, "status"), ["completed"], "{name}");
        assert!(
            db.sql(None, "SELECT * FROM system.live_queries").is_empty(),
            "{name}"
        );
        for (table, user, want) in EXPECTED.rows {
            let user = (!user.is_empty()).then_some(*user);
            let rows = db.sql(user, &format!("SELECT COUNT(*) AS n FROM {table}"));
            assert_eq!(count(&rows), *want, "{name}: {table} as {user:?}");
        }
        // Every schema version survives where the fixture wrote them.
        let versions = db.sql(
            None,
            "SELECT version FROM system.table_schemas WHERE table_id = 'app:notes' ORDER BY version",
        );
        let want_versions = if generation == Generation::G2 {
            1
        } else {
            EXPECTED.notes_versions
        };
        assert_eq!(versions.len() as u32, want_versions, "{name}");
        let notes = db.sql(Some(BOB), "SELECT * FROM app.notes ORDER BY title");
        assert_eq!(notes.len(), 2, "{name}");
        for column in EXPECTED.notes_columns {
            assert!(
                notes[0].get(*column).is_some(),
                "{name}: app.notes lacks {column}: {notes:?}"
            );
        }
        let _ = ALICE;

        // Row data is byte for byte what it was.
        let data_after: BTreeMap<_, _> = db
            .dump()
            .into_iter()
            .filter(|(cf, _)| data_before.contains_key(cf))
            .collect();
        assert_eq!(data_before, data_after, "{name}: row data changed");

        // Clean once finalized.
        assert_eq!(db.migrate(&["finalize"]).code, 0, "{name}");
        let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
        assert_eq!(verify.code, 0, "{name}: {}", verify.stdout);
        let status = db.migrate(&["status"]).json();
        assert_eq!(status["state"], "current", "{name}");
        assert!(status["checkpoint"].is_null(), "{name}");
        assert!(!db.dir.join("rocksdb/conf").exists(), "{name}");
        // The original engine's files are gone from the top; only the data directory is left.
        let top: Vec<String> = std::fs::read_dir(&db.dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "kalamdb.pid")
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(top, ["rocksdb", "storage"], "{name}");
        assert!(!db.dir.join("storage/app/old_drafts").exists(), "{name}");
        // A current directory is a no-op.
        let again = db.migrate(&["apply"]);
        assert_eq!(again.code, 0, "{name}");
        assert_eq!(again.json()["state"], "up_to_date");
    }
}

#[test]
fn status_and_plan_change_nothing_and_the_plan_hash_guards_apply() {
    let db = Legacy::new(Generation::G2);
    let before = db.dump();
    let files_before = snapshot(&db.dir);
    assert_eq!(db.migrate(&["status"]).code, 0);
    let plan = db.migrate(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan = plan.json();
    let hash = plan["hash"].as_str().expect("hash").to_string();
    assert_eq!(plan["invalid"], 0);
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(steps, ["0002", "0003", "0004"]);
    assert_eq!(
        plan["steps"][0]["changes"]["users"]["rekeyed and reshaped"],
        3
    );
    assert_eq!(
        plan["steps"][1]["changes"]["live_queries"]["purged (stale: no daemon runs)"],
        2
    );
    assert_eq!(db.dump(), before, "plan wrote to RocksDB");
    assert_eq!(snapshot(&db.dir), files_before, "plan changed files");
    // The same directory gives the same hash.
    assert_eq!(db.migrate(&["plan"]).json()["hash"], hash.as_str());

    // A change since the plan: apply --plan refuses and changes nothing.
    db.put_raw("system_users", "u_dave", br#"{"user_id":"u_dave","username":"dave","email":null,"created_at":1700000000000,"updated_at":1700000000000}"#);
    let changed = db.dump();
    let run = db.migrate(&["apply", "--plan", &hash]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("changed since plan"), "{}", run.stderr);
    assert_eq!(run.stderr.trim_end().lines().count(), 1);
    assert_eq!(db.dump(), changed);
    assert!(!db.dir.join("migration").exists());
    let fresh = db.migrate(&["plan"]).json()["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    assert_ne!(fresh, hash);
    assert_eq!(db.migrate(&["apply", "--plan", &fresh]).code, 0);
}

#[test]
fn a_malformed_record_refuses_with_3_until_skip_invalid() {
    let db = Legacy::new(Generation::G2);
    db.put_raw("system_users", "u_broken", b"{not json");
    let before = db.dump();
    let files_before = snapshot(&db.dir);
    let plan = db.migrate(&["plan"]);
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    let invalid = &plan.json()["steps"][0]["invalid"][0];
    assert_eq!(invalid["column_family"], "system_users");
    assert_eq!(invalid["key"], "u_broken");
    let run = db.migrate(&["apply"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("u_broken") && run.stderr.contains("--skip-invalid"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert_eq!(db.dump(), before, "a refused apply changed the database");
    assert_eq!(
        snapshot(&db.dir),
        files_before,
        "a refused apply changed a file (it must not even open RocksDB for writing)"
    );
    assert!(
        !db.dir.join("migration").exists(),
        "a refused apply left a checkpoint"
    );

    let run = db.migrate(&["apply", "--skip-invalid"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json()["skipped_invalid"],
        2,
        "reported by both steps that read it"
    );
    let users = db.sql(None, "SELECT username FROM system.users ORDER BY username");
    assert_eq!(names(&users, "username"), EXPECTED.usernames);
}

#[test]
fn bad_inputs_get_one_line_and_their_exit_code() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Not a database.
    let missing = tmp.path().join("nothing");
    let run = migrate_at("status", &missing);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);

    // A RocksDB directory with nothing KalamDB would write: unrecognised, exit 6.
    let unknown = tmp.path().join("unknown");
    {
        let s = Storage::open(&unknown.join("rocksdb"), OpenMode::Create).expect("create");
        s.create_cf("something_else").expect("cf");
        s.put("something_else", b"k", b"v").expect("put");
    }
    let run = migrate_at("apply", &unknown);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot be recognised"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert!(!unknown.join("migration").exists());

    // G1 column families next to G3 keys: a mix, exit 3, nothing changes.
    let mixed = Legacy::new(Generation::G1);
    mixed.put_raw(
        "system_users",
        "user:zed",
        br#"{"user_id":"u_zed","username":"zed","email":"","created_at":1}"#,
    );
    let before = mixed.dump();
    let files_before = snapshot(&mixed.dir);
    let run = mixed.migrate(&["apply"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("mixes generations"), "{}", run.stderr);
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert_eq!(mixed.dump(), before);
    assert_eq!(
        snapshot(&mixed.dir),
        files_before,
        "every byte is unchanged"
    );

    // A newer format: exit 6, naming the writer.
    let newer = Legacy::new(Generation::G3);
    newer.put_raw(
        "default",
        kalamdb_sql::FORMAT_MARKER_KEY,
        br#"{"format_version":7,"written_by":"kalamdb 7.0.0","created_at":1,"updated_at":1}"#,
    );
    let files_before = snapshot(&newer.dir);
    for cmd in [&["status"][..], &["plan"], &["apply"]] {
        let run = newer.migrate(cmd);
        assert_eq!(run.code, 6, "{cmd:?}: {}", run.stderr);
        assert!(run.stderr.contains("kalamdb 7.0.0"), "{}", run.stderr);
    }
    assert_eq!(
        snapshot(&newer.dir),
        files_before,
        "every byte is unchanged"
    );

    // Rollback with nothing to roll back to.
    let run = newer.migrate(&["rollback"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no migration checkpoint"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_second_runner_exits_4() {
    let db = Legacy::new(Generation::G2);
    let lock = DirLock::acquire(&DataDir::new(&db.dir), "another migrate").expect("lock");
    let run = db.migrate(&["apply"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("another migrate"), "{}", run.stderr);
    drop(lock);
    assert!(!db.dir.join("migration").exists());
    // Status reads without the lock.
    assert_eq!(db.migrate(&["status"]).code, 0);
}

/// The outcome of an uninterrupted run of `generation`.
fn uninterrupted(generation: Generation) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    let db = Legacy::new(generation);
    assert_eq!(db.migrate(&["apply"]).code, 0);
    db.outcome()
}

#[test]
fn killed_after_any_step_a_resumed_run_ends_as_an_uninterrupted_one() {
    let want = uninterrupted(Generation::G1);
    let points = [
        "migrate.layout",
        "migrate.layout.done",
        "migrate.checkpoint",
        "migrate.journal",
        "migrate.step.0001",
        "migrate.step.0002",
        "migrate.step.0003",
        "migrate.step.0004",
    ];
    for point in points {
        let db = Legacy::new(Generation::G1);
        let original = db.outcome();
        let kill = format!("{point}=return");
        let run = db.migrate_env(&["apply"], &[("FAILPOINTS", &kill)]);
        assert_eq!(
            run.code, -1,
            "{point}: the process should die by SIGKILL: {}",
            run.stderr
        );
        let status = db.migrate(&["status"]).json();
        match point {
            // Killed while nesting: half the files staged, the original untouched.
            "migrate.layout" => {
                assert!(db.dir.join("rocksdb.tmp").is_dir(), "{point}: mid-way?");
                assert!(!db.dir.join("rocksdb").exists(), "{point}");
                assert_eq!(status["state"], "pending", "{point}");
                assert_eq!(status["layout"]["from"], "original", "{point}");
                assert_eq!(db.outcome(), original, "{point}");
            }
            // Nothing written yet: the original, still readable and pending.
            "migrate.layout.done" | "migrate.checkpoint" => {
                assert!(db.dir.join("rocksdb/CURRENT").is_file(), "{point}");
                assert_eq!(status["state"], "pending", "{point}");
                assert_eq!(db.outcome(), original, "{point}");
            }
            "migrate.step.0004" => assert_eq!(status["state"], "current", "{point}"),
            _ => assert_eq!(status["state"], "interrupted", "{point}: {status}"),
        }
        // kalamd and SQL refuse the half-migrated directory, naming the fix.
        if status["state"] == "interrupted" {
            let refused = kalamctl(&["sql", "--data-dir", db.path(), "SHOW NAMESPACES"]);
            assert_eq!(refused.code, 6, "{point}");
            assert!(
                refused.stderr.contains("kalamctl migrate apply"),
                "{}",
                refused.stderr
            );
        }
        let resumed = db.migrate(&["apply"]);
        assert_eq!(resumed.code, 0, "{point}: {}", resumed.stderr);
        assert_eq!(db.outcome(), want, "{point}: resumed run differs");
        let jobs = db.sql(
            None,
            "SELECT status FROM system.jobs WHERE job_type = 'migration'",
        );
        assert_eq!(
            names(&jobs, "status"),
            ["completed"],
            "{point}: one job row, completed"
        );
    }
}

#[test]
fn real_kill_9_at_many_moments_resumes_or_leaves_the_original() {
    let want = uninterrupted(Generation::G2);
    let mut outcomes = BTreeMap::new();
    for delay_ms in (0..400).step_by(25) {
        let db = Legacy::new(Generation::G2);
        let original = db.outcome();
        common::kalamctl_killed_after(
            &["migrate", "apply", "--data-dir", db.path(), "--quiet"],
            delay_ms,
        );
        let state = db.migrate(&["status"]).json()["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if state == "pending" {
            assert_eq!(db.outcome(), original, "{delay_ms} ms: pending but changed");
        }
        *outcomes.entry(state).or_insert(0) += 1;
        let resumed = db.migrate(&["apply"]);
        assert_eq!(resumed.code, 0, "{delay_ms} ms: {}", resumed.stderr);
        assert_eq!(
            db.outcome(),
            want,
            "{delay_ms} ms: differs from an uninterrupted run"
        );
    }
    assert!(
        outcomes.len() >= 2,
        "the kills should land at different points: {outcomes:?}"
    );
}

#[test]
fn rollback_restores_the_original_byte_for_byte() {
    for (name, generation) in GENERATIONS {
        let db = Legacy::new(generation);
        let original = db.dump();
        let files = snapshot(&db.dir);
        assert_eq!(db.migrate(&["apply"]).code, 0, "{name}");
        assert_ne!(db.dump(), original, "{name}: apply changed nothing?");
        let run = db.migrate(&["rollback"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(
            db.dump(),
            original,
            "{name}: rollback differs from the original"
        );
        // Every file of the original layout, byte for byte, and nothing else.
        assert_eq!(snapshot(&db.dir), files, "{name}: files differ");
        assert_eq!(db.migrate(&["status"]).json()["state"], "pending", "{name}");
    }
    // The same from a directory nested by hand, through its checkpoint.
    let db = Legacy::nested(Generation::G2);
    let original = db.dump();
    assert_eq!(db.migrate(&["apply"]).code, 0);
    assert_eq!(db.migrate(&["rollback"]).code, 0);
    assert_eq!(db.dump(), original);
    assert!(!db.dir.join("migration").exists());
    // Also from an interrupted run, and a rollback killed between its renames finishes.
    let db = Legacy::new(Generation::G1);
    let original = db.dump();
    let files = snapshot(&db.dir);
    let run = db.migrate_env(&["apply"], &[("FAILPOINTS", "migrate.step.0001=return")]);
    assert_eq!(run.code, -1);
    let run = db.migrate_env(&["rollback"], &[("FAILPOINTS", "migrate.rollback=return")]);
    assert_eq!(run.code, -1);
    let refused = db.migrate(&["apply"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("rollback"), "{}", refused.stderr);
    assert_eq!(db.migrate(&["rollback"]).code, 0);
    assert_eq!(db.dump(), original);
    assert_eq!(snapshot(&db.dir), files);
}

#[test]
fn status_shows_drift_when_a_descriptor_changed() {
    let db = Legacy::new(Generation::G3);
    assert_eq!(db.migrate(&["apply"]).code, 0);
    let key = "kalamdb:migration:applied:0003";
    let storage = Storage::open(&db.db(), OpenMode::ReadWrite).expect("open");
    let mut record: Value = serde_json::from_slice(
        &storage
            .get("default", key.as_bytes())
            .expect("get")
            .expect("record"),
    )
    .expect("json");
    record["checksum"] = "sha256:0000".into();
    storage
        .put("default", key.as_bytes(), record.to_string().as_bytes())
        .expect("put");
    drop(storage);
    let status = db.migrate(&["status"]).json();
    let applied = &status["applied"][0];
    assert_eq!(applied["id"], "0003");
    assert!(
        applied["drift"]
            .as_str()
            .unwrap_or("")
            .contains("changed since it was applied"),
        "{status}"
    );
}

#[test]
fn upgrade_check_passes_on_every_generation_and_never_touches_the_original() {
    for (name, generation) in GENERATIONS {
        let db = Legacy::new(generation);
        let before = db.dump();
        let files_before = snapshot(&db.dir);
        let run = kalamctl(&["upgrade-check", "--data-dir", db.path(), "--format", "json"]);
        assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
        let report = run.json();
        assert_eq!(report["ok"], true, "{name}");
        let checks: Vec<&str> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(checks, ["copy", "migrate", "verify", "queries"], "{name}");
        assert_eq!(db.dump(), before, "{name}: the original changed");
        assert_eq!(snapshot(&db.dir), files_before, "{name}: files changed");
        let parent: &Path = db.dir.parent().expect("parent");
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("upgrade-check"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: scratch left behind");
    }
    // A directory whose migration cannot succeed fails the check with 3.
    let db = Legacy::new(Generation::G2);
    db.put_raw("system_jobs", "job:broken", b"[1,2");
    let run = kalamctl(&["upgrade-check", "--data-dir", db.path(), "--format", "json"]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"][1]["name"], "migrate");
    assert_eq!(report["checks"][1]["ok"], false);
}

/// Makes a current directory what an earlier kalamdb wrote: format 1, no cold-tier manifest.
fn as_format_1(dir: &Path) {
    let storage = Storage::open(&dir.join("rocksdb"), OpenMode::ReadWrite).expect("open");
    storage
        .drop_cf("system_cold_batches")
        .expect("drop the manifest");
    let marker =
        br#"{"format_version":1,"written_by":"kalamdb 0.9.0","created_at":1,"updated_at":1}"#;
    storage
        .put("default", b"kalamdb:format", marker)
        .expect("marker");
}

#[test]
fn a_format_1_directory_gets_its_cold_manifest_and_keeps_every_row() {
    let db = common::Db::new();
    db.ok("CREATE NAMESPACE app; \
           CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); \
           CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, v TEXT)");
    for u in [ALICE, BOB] {
        db.ok_as(Some(u), "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')");
    }
    db.ok("INSERT INTO app.s VALUES (1, 'x'), (2, 'y'); FLUSH TABLE app.t; FLUSH TABLE app.s");
    db.ok_as(Some(ALICE), "INSERT INTO app.t VALUES (3, 'c')");
    let alice_before = db.rows_as(Some(ALICE), "SELECT * FROM app.t ORDER BY id");
    let shared_before = db.rows("SELECT * FROM app.s ORDER BY id");
    assert_eq!((alice_before.len(), shared_before.len()), (3, 2));
    as_format_1(&db.dir);
    // Written before option bounds existed: values no CREATE TABLE accepts today.
    {
        let storage = Storage::open(&db.dir.join("rocksdb"), OpenMode::ReadWrite).expect("open");
        let edit = |key: &str, change: &dyn Fn(&mut Value)| {
            let bytes = storage
                .get("system_tables", key.as_bytes())
                .expect("get")
                .expect("table row");
            let mut v: Value = serde_json::from_slice(&bytes).expect("json");
            change(&mut v);
            storage
                .put("system_tables", key.as_bytes(), v.to_string().as_bytes())
                .expect("put");
        };
        edit("table:app:s", &|v| {
            v["deleted_retention_hours"] = u64::MAX.into()
        });
        edit("table:app:t", &|v| {
            v["flush_policy"] =
                format!("{{\"type\":\"row_limit\",\"row_limit\":{}}}", u64::MAX).into()
        });
    }

    // Every command that opens it refuses, naming the fix.
    let refused = db.sql_as(None, "SELECT * FROM app.s");
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("kalamctl migrate apply"),
        "{}",
        refused.stderr
    );

    let migrate = |args: &[&str]| {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        all.extend(["--data-dir", db.path(), "--format", "json"]);
        kalamctl(&all)
    };
    let status = migrate(&["status"]).json();
    assert_eq!(status["generation"], "format1", "{status}");
    assert_eq!(status["state"], "pending", "{status}");
    // A Parquet file no table accounts for is reported, not recorded.
    let stray = db.storage().join("lost/batch-1.parquet");
    std::fs::create_dir_all(stray.parent().expect("dir")).expect("mkdir");
    let any_file = common::files_under(&db.storage().join("app/s"))
        .into_iter()
        .find(|f| f.ends_with(".parquet"))
        .expect("app.s file");
    std::fs::copy(db.storage().join("app/s").join(any_file), &stray).expect("copy");
    let plan = migrate(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan = plan.json();
    assert!(
        plan["steps"][0]["notes"]
            .to_string()
            .contains("lost/batch-1.parquet belongs to no table"),
        "{plan}"
    );
    std::fs::remove_file(&stray).expect("remove the stray file");
    std::fs::remove_dir(stray.parent().expect("dir")).expect("remove its folder");
    let plan = migrate(&["plan"]).json();
    assert_eq!(plan["steps"][0]["id"], "0004", "{plan}");
    assert_eq!(plan["steps"].as_array().map(Vec::len), Some(1), "{plan}");
    // Two users' files of app.t and one of app.s.
    assert_eq!(
        plan["steps"][0]["changes"]["cold_batches"]["recorded"], 3,
        "{plan}"
    );
    let repaired = plan["steps"][0]["repaired"].to_string();
    assert!(
        repaired.contains("table app.s: past its bound, clamped: DELETED_RETENTION hours")
            && repaired.contains("table app.t: past its bound, clamped: FLUSH_POLICY"),
        "{plan}"
    );
    let applied = migrate(&["apply"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let options = db.rows(
        "SELECT table_name, deleted_retention_hours, flush_policy FROM system.tables ORDER BY table_name",
    );
    assert_eq!(
        options[0]["deleted_retention_hours"], 876_600,
        "{options:?}"
    );
    assert_eq!(
        options[1]["flush_policy"],
        format!("{{\"type\":\"row_limit\",\"row_limit\":{}}}", i64::MAX),
        "{options:?}"
    );

    let status = migrate(&["status"]).json();
    assert_eq!(
        (status["state"].as_str(), status["format_version"].as_u64()),
        (Some("current"), Some(2)),
        "{status}"
    );
    assert_eq!(
        db.rows_as(Some(ALICE), "SELECT * FROM app.t ORDER BY id"),
        alice_before
    );
    assert_eq!(db.rows("SELECT * FROM app.s ORDER BY id"), shared_before);
    let recorded = db.rows(
        "SELECT table_name, user_id, row_count, length(sha256) AS sha FROM system.cold_batches ORDER BY table_name, user_id",
    );
    let seen: Vec<(String, String, i64, i64)> = recorded
        .iter()
        .map(|r| {
            (
                r["table_name"].as_str().unwrap_or_default().to_string(),
                r["user_id"].as_str().unwrap_or_default().to_string(),
                r["row_count"].as_i64().unwrap_or(-1),
                r["sha"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let mut want = vec![
        ("s".to_string(), String::new(), 2, 64),
        ("t".to_string(), ALICE.to_string(), 2, 64),
        ("t".to_string(), BOB.to_string(), 2, 64),
    ];
    want.sort();
    assert_eq!(seen, want);
    // Every file is recorded with its checksum: a full verify is clean, and a deleted file is
    // now found.
    let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    let shared_file = common::files_under(&db.storage().join("app/s"))
        .into_iter()
        .find(|f| f.ends_with(".parquet"))
        .expect("app.s file");
    std::fs::remove_file(db.storage().join("app/s").join(shared_file)).expect("delete");
    let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
    assert_eq!(verify.code, 3, "{}", verify.stdout);
    assert!(
        verify.stdout.contains("cold.batch_missing"),
        "{}",
        verify.stdout
    );
}

/// A directory written before the cold-tier manifest, with tables whose cold files live in a
/// bucket (a real S3 server on loopback): without credentials for the bucket, `plan` names
/// the table and the fix and `apply` refuses, changing nothing; with them, the bucket's
/// objects are recorded like local files, so every row, hot and cold, is still read, and a
/// full verify is clean.
#[test]
fn a_format_1_directory_with_tables_on_s3_gets_its_objects_recorded() {
    let s3 = kalamdb_fixtures::s3::S3Server::start();
    s3.create_bucket("lake");
    let db = common::Db::new();
    let config = db.dir.parent().expect("tmp").join("kalamd.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  credentials:\n    lake-creds:\n      access_key_id: test\n      secret_access_key: test\n      endpoint: {}\n      allow_http: true\n",
            s3.endpoint()
        ),
    )
    .expect("config");
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().expect("utf8")];
        all.extend_from_slice(args);
        all.extend(["--data-dir", db.path(), "--format", "json"]);
        kalamctl(&all)
    };
    let sql = |user: Option<&str>, sql: &str| {
        let mut args = vec!["sql"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.push(sql);
        let run = with_config(&args);
        assert_eq!(run.code, 0, "`{sql}`: {}", run.stderr);
        run.json()["results"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["rows"].as_array().cloned())
            .unwrap_or_default()
    };
    sql(
        None,
        "CREATE STORAGE lake TYPE s3 PATH 's3://lake/v1' CREDENTIALS 'lake-creds'; \
         CREATE NAMESPACE app; \
         CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE = 'lake'); \
         CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE = 'lake')",
    );
    for u in [ALICE, BOB] {
        sql(Some(u), "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')");
    }
    sql(
        None,
        "INSERT INTO app.s VALUES (1, 'x'), (2, 'y'); FLUSH TABLE app.t; FLUSH TABLE app.s",
    );
    sql(Some(ALICE), "INSERT INTO app.t VALUES (3, 'c')");
    assert_eq!(
        s3.keys("lake", "v1/").len(),
        3,
        "two users' objects of app.t, one of app.s"
    );
    let alice_before = sql(Some(ALICE), "SELECT * FROM app.t ORDER BY id");
    let shared_before = sql(None, "SELECT * FROM app.s ORDER BY id");
    assert_eq!((alice_before.len(), shared_before.len()), (3, 2));
    as_format_1(&db.dir);
    let objects_before: Vec<(String, Vec<u8>)> = s3
        .keys("lake", "")
        .into_iter()
        .map(|k| {
            let bytes = s3.get("lake", &k);
            (k, bytes)
        })
        .collect();

    // Without the credentials: named, refused, nothing changed.
    let files_before = snapshot(&db.dir);
    let plan = db.cmd(&["migrate", "plan"]);
    assert_eq!(plan.code, 3, "{}{}", plan.stdout, plan.stderr);
    let invalid = plan.json()["steps"][0]["invalid"].to_string();
    assert!(
        invalid.contains("the batch files of app.t on storage location 'lake' cannot be listed")
            && invalid.contains("lake-creds")
            && invalid.contains("--config FILE"),
        "{invalid}"
    );
    let refused = db.cmd(&["migrate", "apply"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("--skip-invalid"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        snapshot(&db.dir),
        files_before,
        "a refused apply changed files"
    );

    // With them: every object recorded, read, verified; the bucket untouched.
    let plan = with_config(&["migrate", "plan"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan = plan.json();
    assert_eq!(
        plan["steps"][0]["changes"]["cold_batches"]["recorded"], 3,
        "{plan}"
    );
    let applied = with_config(&["migrate", "apply"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert_eq!(
        sql(Some(ALICE), "SELECT * FROM app.t ORDER BY id"),
        alice_before
    );
    assert_eq!(sql(None, "SELECT * FROM app.s ORDER BY id"), shared_before);
    let recorded = sql(
        None,
        "SELECT table_name, user_id, row_count, length(sha256) AS sha FROM system.cold_batches ORDER BY table_name, user_id",
    );
    assert_eq!(
        recorded,
        vec![
            serde_json::json!({"table_name": "s", "user_id": "", "row_count": 2, "sha": 64}),
            serde_json::json!({"table_name": "t", "user_id": BOB, "row_count": 2, "sha": 64}),
            serde_json::json!({"table_name": "t", "user_id": ALICE, "row_count": 2, "sha": 64}),
        ],
        "ordered by user_id: {BOB} sorts before {ALICE}"
    );
    let verify = with_config(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    let objects_after: Vec<(String, Vec<u8>)> = s3
        .keys("lake", "")
        .into_iter()
        .map(|k| {
            let bytes = s3.get("lake", &k);
            (k, bytes)
        })
        .collect();
    assert_eq!(
        objects_after, objects_before,
        "the migration changed the bucket"
    );
    assert!(
        !common::files_under(&db.dir)
            .iter()
            .any(|f| f.ends_with(".parquet")),
        "nothing local"
    );
}

/// Every file under `dir` except what a migration adds beside the original layout.
fn original_part(dir: &Path) -> Vec<(String, Vec<u8>)> {
    snapshot(dir)
        .into_iter()
        .filter(|(f, _)| {
            !["rocksdb", "migration", "jobs", "kalamdb.pid"]
                .iter()
                .any(|ours| f == ours || f.starts_with(&format!("{ours}/")))
        })
        .collect()
}

#[test]
fn the_original_layout_goes_through_every_command_as_given() {
    for (name, generation) in GENERATIONS {
        let db = Legacy::new(generation);
        assert!(db.dir.join("CURRENT").is_file(), "the fixture is flat");
        let files = snapshot(&db.dir);

        // Read-only commands take it as it is and change nothing.
        let status = db.migrate(&["status"]);
        assert_eq!(status.code, 0, "{name}: {}", status.stderr);
        let plan = db.migrate(&["plan"]);
        assert_eq!(plan.code, 0, "{name}: {}", plan.stderr);
        let plan = plan.json();
        let layout = &plan["layout"];
        assert_eq!(layout["from"], "original", "{name}: {plan}");
        assert_eq!(
            layout["database"],
            db.dir.join("rocksdb").display().to_string()
        );
        assert!(
            layout["linked"].as_u64().unwrap_or(0) >= 1,
            "{name}: {plan}"
        );
        assert!(
            layout["copied"].as_u64().unwrap_or(0) >= 3,
            "{name}: {plan}"
        );
        assert!(layout["blocked"].is_null(), "{name}: {plan}");
        assert_eq!(
            layout["carried"].as_array().map(Vec::len),
            Some(usize::from(generation == Generation::G1)),
            "{name}: G1 carries conf/: {plan}"
        );
        assert_eq!(
            snapshot(&db.dir),
            files,
            "{name}: status or plan changed a file"
        );

        // Everything else refuses it, naming the command that fixes it.
        let refused = kalamctl(&["sql", "--data-dir", db.path(), "SHOW NAMESPACES"]);
        assert_eq!(refused.code, 6, "{name}: {}", refused.stderr);
        assert!(
            refused
                .stderr
                .contains(&format!("kalamctl migrate apply --data-dir {}", db.path())),
            "{}",
            refused.stderr
        );
        assert_eq!(refused.stderr.trim_end().lines().count(), 1);

        // apply nests it, the plan's hash still holds, and the original files stay as they were.
        let hash = plan["hash"].as_str().expect("hash");
        let applied = db.migrate(&["apply", "--plan", hash]);
        assert_eq!(applied.code, 0, "{name}: {}", applied.stderr);
        let applied = applied.json();
        assert_eq!(applied["nested"], true, "{name}");
        assert!(
            applied["checkpoint"]
                .as_str()
                .unwrap_or("")
                .contains("original engine's files"),
            "{name}: {applied}"
        );
        assert_eq!(
            original_part(&db.dir),
            files,
            "{name}: an original file changed"
        );
        // Before finalize the dropped table's Parquet file is still there: one warning.
        let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
        assert_eq!(verify.code, 1, "{name}: {}", verify.stdout);
        assert_eq!(
            verify.json()["summary"]["errors"],
            0,
            "{name}: {}",
            verify.stdout
        );
        let rows = db.sql(Some(BOB), "SELECT COUNT(*) AS n FROM app.notes");
        assert_eq!(count(&rows), 2, "{name}");

        // rollback: exactly the original; apply again; finalize.
        assert_eq!(db.migrate(&["rollback"]).code, 0, "{name}");
        assert_eq!(snapshot(&db.dir), files, "{name}: rollback");
        assert_eq!(db.migrate(&["apply"]).code, 0, "{name}");
        let finalized = db.migrate(&["finalize"]);
        assert_eq!(finalized.code, 0, "{name}: {}", finalized.stderr);
        assert!(
            finalized.json()["removed"]
                .to_string()
                .contains(&db.dir.join("CURRENT").display().to_string()),
            "{name}"
        );
        assert!(!db.dir.join("CURRENT").exists(), "{name}");
        let status = db.migrate(&["status"]).json();
        assert_eq!(status["state"], "current", "{name}");
        assert!(status["checkpoint"].is_null(), "{name}: {status}");
        let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
        assert_eq!(verify.code, 0, "{name}: {}", verify.stdout);
        let rows = db.sql(Some(ALICE), "SELECT COUNT(*) AS n FROM app.notes");
        assert_eq!(count(&rows), 3, "{name}");
    }
}

#[test]
fn a_directory_nested_by_hand_still_migrates() {
    let db = Legacy::nested(Generation::G3);
    let status = db.migrate(&["status"]).json();
    assert_eq!(status["state"], "pending");
    assert!(status["layout"].is_null(), "{status}");
    let applied = db.migrate(&["apply"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert_eq!(applied.json()["nested"], false);
    assert!(db.dir.join("migration/checkpoint").is_dir());
    assert_eq!(db.migrate(&["finalize"]).code, 0);
    let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn a_directory_shared_with_other_files_migrates_into_a_new_one_with_to() {
    let db = Legacy::new(Generation::G2);
    std::fs::write(db.dir.join("notes.txt"), b"the operator's own file").expect("write");
    let files = snapshot(&db.dir);
    let plan = db.migrate(&["plan"]).json();
    assert!(
        plan["layout"]["blocked"]
            .as_str()
            .unwrap_or("")
            .contains("notes.txt"),
        "{plan}"
    );
    let status = db.migrate(&["status"]).json();
    assert!(
        status["next"]
            .as_str()
            .unwrap_or("")
            .contains("--to NEW_DIR"),
        "{status}"
    );
    let refused = db.migrate(&["apply"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("notes.txt") && refused.stderr.contains("--to NEW_DIR"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.trim_end().lines().count(), 1);
    assert_eq!(snapshot(&db.dir), files, "a refusal changed a file");

    // --to inside the original, or into a directory that holds something, is refused.
    let inside = db.dir.join("new");
    let run = db.migrate(&["apply", "--to", inside.to_str().expect("utf8")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("outside"), "{}", run.stderr);
    let busy = db._tmp.path().join("busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(busy.join("x"), b"x").expect("write");
    let run = db.migrate(&["apply", "--to", busy.to_str().expect("utf8")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    assert_eq!(snapshot(&db.dir), files);

    // Killed while copying: the next run starts the copy again and ends the same.
    let new = db._tmp.path().join("migrated");
    let to = new.to_str().expect("utf8");
    let run = db.migrate_env(
        &["apply", "--to", to],
        &[("FAILPOINTS", "migrate.layout=return")],
    );
    assert_eq!(run.code, -1, "{}", run.stderr);
    assert!(new.join("rocksdb.tmp").is_dir(), "killed mid-copy");
    assert!(!new.join("rocksdb").exists());
    let run = db.migrate(&["apply", "--to", to]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["data_dir"], to);
    assert_eq!(report["copied_from"], db.path());
    assert_eq!(snapshot(&db.dir), files, "the original changed");

    // The copy is a data directory of its own.
    let copy = Legacy {
        _tmp: tempfile::tempdir().expect("tempdir"),
        dir: new.clone(),
    };
    for (table, user, want) in EXPECTED.rows {
        let user = (!user.is_empty()).then_some(*user);
        let rows = copy.sql(user, &format!("SELECT COUNT(*) AS n FROM {table}"));
        assert_eq!(count(&rows), *want, "{table} as {user:?}");
    }
    let verify = kalamctl(&["verify", "--data-dir", to, "--format", "json"]);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    assert_eq!(verify.json()["summary"]["errors"], 0, "{}", verify.stdout);
    // Running it again goes on where the copy stands: nothing to do.
    let again = db.migrate(&["apply", "--to", to]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["state"], "up_to_date");
    assert_eq!(copy.migrate(&["finalize"]).code, 0);
    assert!(!new.join("storage/app/old_drafts").exists());
    let verify = kalamctl(&["verify", "--data-dir", to, "--format", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert_eq!(
        snapshot(&db.dir),
        files,
        "finalize of the copy touched the original"
    );
}

#[test]
fn a_wrong_path_gets_the_fix_for_what_it_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let legacy = tmp.path().join("kalamdb_data");
    kalamdb_fixtures::write(Generation::G1, &legacy).expect("fixture");
    // The parent of the legacy directory: name the directory inside, never `init`.
    let run = migrate_at("plan", tmp.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("pass --data-dir {}", legacy.display())),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("init"), "{}", run.stderr);
    // A directory with other things in it: check the path, never `init`.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("readme"), b"x").expect("write");
    let run = migrate_at("status", &other);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("check the path") && !run.stderr.contains("init"),
        "{}",
        run.stderr
    );
    // An empty one: `init` is the right advice there.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let run = migrate_at("status", &empty);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("kalamctl init"), "{}", run.stderr);
}

#[test]
fn a_finalize_killed_while_deleting_the_original_files_finishes_when_run_again() {
    let db = Legacy::new(Generation::G2);
    assert_eq!(db.migrate(&["apply"]).code, 0);
    let run = db.migrate_env(
        &["finalize"],
        &[("FAILPOINTS", "migrate.finalize.original=return")],
    );
    assert_eq!(run.code, -1, "{}", run.stderr);
    // Killed after CURRENT went: what is left is no database, and the rest is still there.
    assert!(!db.dir.join("CURRENT").exists());
    assert!(
        common::files_under(&db.dir)
            .iter()
            .any(|f| !f.contains('/') && f.ends_with(".sst")),
        "the kill landed before the SST files were deleted"
    );
    // Rollback is no longer possible; the migrated directory works; finalize finishes.
    let status = db.migrate(&["status"]).json();
    assert!(status["checkpoint"].is_null(), "{status}");
    assert_eq!(db.migrate(&["finalize"]).code, 0);
    let top: Vec<String> = common::files_under(&db.dir)
        .into_iter()
        .filter(|f| !f.contains('/'))
        .collect();
    assert_eq!(
        top,
        ["kalamdb.pid"],
        "only the lock file is left at the top"
    );
    let verify = kalamctl(&["verify", "--data-dir", db.path(), "--format", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

/// Runs a copy of kalamctl as an unprivileged user (nobody) when this process is root, who
/// may write anywhere; as itself otherwise. The copy sits in `bin_dir`, readable by all.
fn kalamctl_unprivileged(bin_dir: &Path, args: &[&str]) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let exe = bin_dir.join("kalamctl");
    if !exe.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_kalamctl"), &exe).expect("copy kalamctl");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
        c
    } else {
        std::process::Command::new(&exe)
    };
    cmd.args(args)
        .env_remove("KALAMDB_DATA_DIR")
        .output()
        .expect("spawn kalamctl")
        .into()
}

#[test]
fn a_directory_this_user_cannot_write_is_migrated_into_a_new_one_with_to() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    mode(tmp.path(), 0o755);
    let dir = tmp.path().join("kalamdb_data");
    kalamdb_fixtures::write(Generation::G2, &dir).expect("fixture");
    // Readable by everyone, writable by nobody but its owner (root, here).
    for d in std::iter::once(String::new()).chain(common::dirs_under(&dir)) {
        mode(&dir.join(d), 0o555);
    }
    for f in common::files_under(&dir) {
        mode(&dir.join(f), 0o444);
    }
    let files = snapshot(&dir);
    let path = dir.to_str().expect("utf8");
    let plan = kalamctl_unprivileged(
        tmp.path(),
        &["migrate", "plan", "--data-dir", path, "--format", "json"],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.json()["layout"]["blocked"]
            .as_str()
            .unwrap_or("")
            .contains("not writable"),
        "{}",
        plan.stdout
    );
    let refused = kalamctl_unprivileged(tmp.path(), &["migrate", "apply", "--data-dir", path]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not writable") && refused.stderr.contains("--to NEW_DIR"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.trim_end().lines().count(), 1);
    // A place this user may write: the copy goes there; the original stays as it was.
    let space = tmp.path().join("space");
    std::fs::create_dir(&space).expect("mkdir");
    mode(&space, 0o777);
    let new = space.join("kalamdb");
    let to = new.to_str().expect("utf8");
    let run = kalamctl_unprivileged(
        tmp.path(),
        &[
            "migrate",
            "apply",
            "--data-dir",
            path,
            "--to",
            to,
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["copied_from"], path);
    assert_eq!(snapshot(&dir), files, "the original changed");
    let verify = kalamctl_unprivileged(
        tmp.path(),
        &["verify", "--data-dir", to, "--format", "json"],
    );
    assert_eq!(verify.json()["summary"]["errors"], 0, "{}", verify.stdout);
    for d in std::iter::once(String::new()).chain(common::dirs_under(&dir)) {
        mode(&dir.join(d), 0o755);
    }
}

/// A legacy directory's S3 location (`s3://kalam-archive/${user_id}`, credentials
/// `aws-prod`) stays an S3 location, and works once its profile is configured: a table on it
/// flushes objects into the bucket (a real S3 server on loopback) and reads them back, through
/// `kalamctl sql --config`.
#[test]
fn a_legacy_s3_location_migrates_and_works_against_a_loopback_server() {
    let db = Legacy::new(Generation::G3);
    let applied = db.migrate(&["apply"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let location = db.sql(
        None,
        "SELECT location_type, path, credentials_ref FROM system.storage_locations WHERE location_name = 'archive'",
    );
    assert_eq!(
        location,
        vec![
            serde_json::json!({"location_type": "s3", "path": "s3://kalam-archive/${user_id}", "credentials_ref": "aws-prod"})
        ]
    );
    let s3 = kalamdb_fixtures::s3::S3Server::start();
    s3.create_bucket("kalam-archive");
    let config = db.dir.parent().expect("tmp").join("kalamd.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  credentials:\n    aws-prod:\n      access_key_id: test\n      secret_access_key: test\n      endpoint: {}\n      allow_http: true\n",
            s3.endpoint()
        ),
    )
    .expect("config");
    let with_config = ["--config", config.to_str().expect("utf8")];
    let sql = |user: Option<&str>, sql: &str| db.sql_with(&with_config, user, sql);
    sql(
        None,
        "CREATE NAMESPACE lake; CREATE USER TABLE lake.n (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE = 'archive')",
    );
    sql(Some(ALICE), "INSERT INTO lake.n VALUES (1, 'a'), (2, 'b')");
    sql(None, "FLUSH TABLE lake.n");
    let keys = s3.keys("kalam-archive", "");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("{ALICE}/lake/n/batch-")),
        "{keys:?}"
    );
    assert_eq!(
        sql(Some(ALICE), "SELECT id, v FROM lake.n WHERE id = 2"),
        vec![serde_json::json!({"id": 2, "v": "b"})]
    );
    assert!(
        !common::files_under(&db.dir)
            .iter()
            .any(|f| f.contains("kalam-archive")),
        "nothing local"
    );
}
