//! Table deletion as a resumable job, through `kalamctl table drop`, `kalamctl sql` and
//! `kalamctl jobs`: nothing of a dropped table stays on disk, crashes at any step resume to
//! the same end state, and the counts stay true.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Db, files_under, kalamctl_env};
use serde_json::Value;

/// Steps a drop records; the fail point `{step}=return` kills the process right after each.
const FAIL_POINTS: [&str; 6] = [
    "table_deletion.recorded",
    "table_deletion.uncataloged",
    "table_deletion.hot_dropped",
    "table_deletion.cold_file",
    "table_deletion.cold_deleted",
    "table_deletion.metadata_deleted",
];

/// `app.keep` (which must survive every drop) and `app.<name>` of `kind` with rows from
/// `users` users: flushed to Parquet, then more rows left hot.
fn setup(kind: &str, name: &str, users: usize) -> Db {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.keep (id BIGINT PRIMARY KEY); INSERT INTO app.keep VALUES (1)");
    db.ok(&format!(
        "CREATE {kind} TABLE app.{name} (id BIGINT PRIMARY KEY, body TEXT)"
    ));
    fill(&db, kind, name, users);
    db
}

fn fill(db: &Db, kind: &str, name: &str, users: usize) {
    let insert = format!("INSERT INTO app.{name} VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    match kind {
        "USER" => {
            for u in 0..users {
                db.ok_as(Some(&format!("u{u}")), &insert);
            }
        }
        _ => {
            db.ok(&insert);
        }
    }
    if kind != "STREAM" {
        db.ok(&format!("FLUSH TABLE app.{name}"));
        let recorded = db.rows(&format!(
            "SELECT file_name FROM system.cold_batches WHERE table_name = '{name}'"
        ));
        assert!(!recorded.is_empty(), "the flush recorded its files");
        let hot = format!("INSERT INTO app.{name} VALUES (4, 'hot')");
        match kind {
            "USER" => db.ok_as(Some("u0"), &hot),
            _ => db.ok(&hot),
        };
    }
}

/// Nothing of `app.<name>` is left: no catalog or schema row, no column family, no file, no
/// unfinished job; `app.keep` is intact and the counts are right.
fn assert_gone(db: &Db, name: &str) {
    let tables = db.rows("SHOW TABLES IN app");
    let names: Vec<&str> = tables
        .iter()
        .filter_map(|t| t["table_name"].as_str())
        .collect();
    assert_eq!(names, vec!["keep"], "catalog still lists the table");
    let schemas = db.rows(&format!(
        "SELECT schema_id FROM system.table_schemas WHERE table_id = 'app:{name}'"
    ));
    assert!(schemas.is_empty(), "schema rows left: {schemas:?}");
    let batches = db.rows(&format!(
        "SELECT file_name FROM system.cold_batches WHERE namespace = 'app' AND table_name = '{name}'"
    ));
    assert!(
        batches.is_empty(),
        "cold-tier manifest entries left: {batches:?}"
    );
    let cfs = db.column_families();
    assert!(
        !cfs.iter().any(|cf| cf.ends_with(&format!(":app:{name}"))),
        "column family left: {cfs:?}"
    );
    let files = files_under(&db.storage());
    assert!(
        files.iter().all(|f| !f.starts_with(&format!("app/{name}"))),
        "files left: {files:?}"
    );
    assert!(
        !db.storage().join("app").join(name).exists(),
        "empty table directory left"
    );
    let ns = db.rows("SHOW NAMESPACES");
    assert_eq!(ns[0]["table_count"], 1, "table_count: {ns:?}");
    let loc =
        db.rows("SELECT usage_count FROM system.storage_locations WHERE location_name = 'local'");
    assert_eq!(loc[0]["usage_count"], 1, "usage_count: {loc:?}");
    let unfinished = db.rows(
        "SELECT job_id, status FROM system.jobs WHERE job_type = 'table_deletion' AND status IN ('running', 'cancelling', 'paused', 'queued')",
    );
    assert!(
        unfinished.is_empty(),
        "unfinished deletions: {unfinished:?}"
    );
    assert_eq!(db.rows("SELECT id FROM app.keep").len(), 1);
}

/// The same name can be created again, and starts empty.
fn assert_recreatable(db: &Db, kind: &str, name: &str) {
    db.ok(&format!(
        "CREATE {kind} TABLE app.{name} (id BIGINT PRIMARY KEY)"
    ));
    let rows = db.rows_as(Some("u0"), &format!("SELECT * FROM app.{name}"));
    assert!(rows.is_empty(), "recreated table is not empty: {rows:?}");
}

#[test]
fn drop_each_table_type_leaves_nothing_behind() {
    for (kind, files) in [("USER", 3), ("SHARED", 1), ("STREAM", 0)] {
        let db = setup(kind, "t", 3);
        let before = files_under(&db.storage()).len();
        let parquet_bytes: u64 = files_under(&db.storage().join("app/t"))
            .iter()
            .map(|f| std::fs::metadata(db.storage().join("app/t").join(f)).map_or(0, |m| m.len()))
            .sum();
        let report = db.cmd_ok(&["table", "drop", "app.t"]);
        assert_eq!(report["dropped"], true);
        assert_eq!(report["files_deleted"], files, "{kind}: {report}");
        assert_eq!(
            files_under(&db.storage()).len(),
            before - files,
            "{kind}: other files touched"
        );
        if files > 0 {
            // Exactly the Parquet files: the column family's SST files are RocksDB's to
            // delete later, and are reported apart.
            assert!(parquet_bytes > 0);
            assert_eq!(
                report["bytes_freed"].as_u64(),
                Some(parquet_bytes),
                "{report}: the table's Parquet files held {parquet_bytes} bytes"
            );
            assert!(report["hot_bytes_released"].is_u64(), "{report}");
            // Each file holds three flushed rows; their footers are counted.
            assert!(
                report["rows_estimate"].as_u64().unwrap_or(0) >= 3 * files as u64,
                "{report}"
            );
        }
        let job_id = report["job_id"].as_str().expect("job id").to_string();
        let job = db.cmd_ok(&["jobs", "show", &job_id])["job"].clone();
        assert_eq!(job["status"], "completed");
        assert_eq!(job["job_type"], "table_deletion");
        assert_eq!(
            job["parameters"],
            serde_json::json!(["app", "t", kind.to_lowercase()])
        );
        let result: Value =
            serde_json::from_str(job["result"].as_str().expect("result")).expect("result json");
        assert_eq!(result["files_deleted"], files);
        assert!(job["owner"]["pid"].as_u64().is_some(), "owner: {job}");
        assert_gone(&db, "t");
        assert_recreatable(&db, kind, "t");
    }
}

#[test]
fn sql_drop_uses_the_same_routine_and_if_exists_works() {
    let db = setup("USER", "t", 2);
    db.ok("DROP USER TABLE app.t");
    assert_gone(&db, "t");
    db.fails("DROP TABLE app.t", 2, "does not exist");
    let done = db.ok("DROP TABLE IF EXISTS app.t");
    assert_eq!(done[0]["row_count"], 0);
    let run = db.cmd(&["table", "drop", "app.t"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let report = db.cmd_ok(&["table", "drop", "app.t", "--if-exists"]);
    assert_eq!(report["dropped"], false);
    // The wrong type is refused, and nothing changes.
    db.ok("CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY)");
    let run = db.cmd(&["table", "drop", "app.s", "--type", "user"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is a shared table"), "{}", run.stderr);
    assert_eq!(db.rows("SHOW TABLES IN app").len(), 2);
    // A bad name gets one line that says how to write it.
    let run = db.cmd(&["table", "drop", "nodot"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("namespace.table"), "{}", run.stderr);
}

#[test]
fn offline_drop_clears_and_reports_stale_live_queries() {
    let db = setup("USER", "t", 1);
    {
        let storage = kalamdb_store::Storage::open(
            &db.dir.join("rocksdb"),
            kalamdb_store::OpenMode::ReadWrite,
        )
        .expect("open");
        let sql = kalamdb_sql::KalamSql::new(storage);
        let lq: kalamdb_sql::LiveQueryRecord = serde_json::from_value(serde_json::json!({
            "live_id": "conn1-q1", "connection_id": "conn1", "table_name": "t",
            "query_id": "q1", "user_id": "u0", "query": "SELECT * FROM app.t", "options": "{}",
            "created_at": 1, "updated_at": 1, "changes": 0, "node": "gone"
        }))
        .expect("live query record");
        sql.live_queries().insert(&lq).expect("insert live query");
    }
    let report = db.cmd_ok(&["table", "drop", "app.t"]);
    assert_eq!(
        report["stale_subscriptions_cleared"],
        serde_json::json!(["conn1-q1"])
    );
    assert!(db.rows("SELECT * FROM system.live_queries").is_empty());
    assert_gone(&db, "t");
}

/// Kills the drop with SIGKILL right after each step, then resumes it with `jobs resume`.
/// Each time, the end state is the uninterrupted one.
#[test]
fn kill_at_each_step_then_resume() {
    for point in FAIL_POINTS {
        let db = setup("USER", "t", 3);
        let id = crash_drop_at(&db, point);

        // The job is paused (never "running"), even in a read-only look.
        let jobs = db.cmd_ok(&["jobs", "list", "--type", "table_deletion"])["jobs"].clone();
        let job = &jobs[0];
        assert_eq!(job["job_id"], id.as_str(), "{point}: {job}");
        assert_eq!(job["status"], "paused", "{point}: {job}");
        assert!(
            job["error_message"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("kalamctl jobs resume {id}"))),
            "{point}: {job}"
        );

        // Until it finishes, the name cannot be reused and a second drop is refused cleanly.
        let again = db.sql_as(None, "CREATE USER TABLE app.t (id BIGINT PRIMARY KEY)");
        assert_eq!(again.code, 2, "{point}: {}", again.stderr);
        let again = db.cmd(&["table", "drop", "app.t"]);
        assert_eq!(again.code, 2, "{point}: {}", again.stderr);
        assert!(
            again.stderr.contains("already being dropped"),
            "{}",
            again.stderr
        );

        let resumed = db.cmd_ok(&["jobs", "resume", &id]);
        assert_eq!(resumed["outcome"], "finished", "{point}: {resumed}");
        assert_eq!(resumed["job"]["status"], "completed");
        assert_gone(&db, "t");
        // Resuming again is a no-op that says so.
        assert_eq!(
            db.cmd_ok(&["jobs", "resume", &id])["outcome"],
            "already_completed"
        );
        assert_recreatable(&db, "USER", "t");
    }
}

/// Real kill -9 at many moments of a drop with many files; the kills must land at several
/// distinct points, some of them mid-drop (a paused job).
#[test]
fn kill_9_at_random_moments_then_resume() {
    let mut landed: std::collections::BTreeMap<String, u32> = Default::default();
    // A fixed spread of delays, then, if none landed mid-drop (a loaded machine starts the
    // process later), a finer sweep from the last delay that landed before the job row.
    let mut delays: std::collections::VecDeque<u64> =
        [15u64, 25, 35, 45, 55, 65, 75, 85, 95, 110, 130, 160].into();
    let mut latest_before = 0u64;
    let mut swept = 0;
    while let Some(delay_ms) = delays.pop_front() {
        let db = setup("USER", "t", 40);
        let status = common::kalamctl_killed_after(
            &["table", "drop", "app.t", "--data-dir", db.path()],
            delay_ms,
        );
        let jobs = db.cmd_ok(&["jobs", "list", "--type", "table_deletion"])["jobs"].clone();
        let job = jobs.as_array().and_then(|j| j.first());
        let where_ = match (status.success(), job) {
            (true, _) => "finished".to_string(),
            (false, None) => "before the job row".to_string(),
            (false, Some(j)) => format!(
                "{} at {}",
                j["status"].as_str().unwrap_or("?"),
                j["step"].as_str().unwrap_or("no step")
            ),
        };
        if where_ == "before the job row" {
            latest_before = latest_before.max(delay_ms);
        }
        *landed.entry(where_).or_insert(0) += 1;
        match job {
            // Killed before the job row: the table is untouched and drops normally.
            None => {
                assert_eq!(db.rows("SHOW TABLES IN app").len(), 2, "{delay_ms} ms");
                db.cmd_ok(&["table", "drop", "app.t"]);
            }
            Some(job) => {
                let id = job["job_id"].as_str().expect("id").to_string();
                match job["status"].as_str() {
                    Some("completed") => {}
                    Some("paused") => {
                        db.cmd_ok(&["jobs", "resume", &id]);
                    }
                    // Killed between recording the job and its first step: nothing was
                    // touched, and the job says it was abandoned.
                    Some("failed") => {
                        assert_eq!(db.rows("SHOW TABLES IN app").len(), 2, "{delay_ms} ms");
                        db.cmd_ok(&["table", "drop", "app.t"]);
                    }
                    other => panic!("{delay_ms} ms: job left {other:?}: {job}"),
                }
            }
        }
        assert_gone(&db, "t");
        let mid_drop = landed.keys().any(|k| k.starts_with("paused"));
        if delays.is_empty() && !mid_drop && swept < 30 {
            swept += 1;
            delays.push_back(latest_before + 4 * swept);
        }
    }
    eprintln!("kills landed: {landed:?}");
    let mid_drop = landed.keys().filter(|k| k.starts_with("paused")).count();
    let killed = landed.keys().filter(|k| *k != "finished").count();
    assert!(
        killed >= 2 && mid_drop >= 1,
        "the kills must land at distinct points, mid-drop among them: {landed:?}"
    );
}

/// Runs `kalamctl table drop app.t` killed at `point`; returns the paused job's id.
fn crash_drop_at(db: &Db, point: &str) -> String {
    let run = kalamctl_env(
        &["table", "drop", "app.t", "--data-dir", db.path()],
        &[("FAILPOINTS", &format!("{point}=return"))],
    );
    assert_eq!(
        run.code, -1,
        "{point}: expected death by SIGKILL: {}",
        run.stderr
    );
    db.cmd_ok(&["jobs", "list", "--status", "paused"])["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[test]
fn jobs_cancel_and_prune() {
    let db = setup("USER", "t", 1);
    // Paused before any irreversible step: cancel works and leaves the table intact.
    let id = crash_drop_at(&db, "table_deletion.recorded");
    let out = db.cmd_ok(&["jobs", "cancel", &id]);
    assert_eq!(out["outcome"], "cancelled");
    let shown = db.cmd_ok(&["jobs", "show", &id]);
    assert_eq!(shown["job"]["status"], "cancelled");
    // Why it ended, as a stable code a client reads without parsing the message.
    assert_eq!(shown["job"]["error_code"], "cancelled", "{shown}");
    let coded = db.rows(&format!(
        "SELECT error_code FROM system.jobs WHERE job_id = '{id}'"
    ));
    assert_eq!(coded[0]["error_code"], "cancelled", "{coded:?}");
    assert_eq!(db.rows("SHOW TABLES IN app").len(), 2);
    let run = db.cmd(&["jobs", "cancel", &id]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("already ended"), "{}", run.stderr);

    // Past the point of no return: cancel is refused and says how to finish.
    let id = crash_drop_at(&db, "table_deletion.uncataloged");
    let run = db.cmd(&["jobs", "cancel", &id]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("jobs resume"), "{}", run.stderr);
    db.cmd_ok(&["jobs", "resume", &id]);
    assert_gone(&db, "t");

    // Filters, and bad arguments that change nothing.
    let all = db.cmd_ok(&["jobs", "list"])["jobs"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(all >= 3);
    let recent = db.cmd_ok(&["jobs", "list", "--since", "1h", "--type", "flush"])["jobs"].clone();
    assert!(
        recent
            .as_array()
            .is_some_and(|j| !j.is_empty() && j.iter().all(|j| j["job_type"] == "flush"))
    );
    let future = db.cmd_ok(&["jobs", "list", "--since", "2100-01-01"])["jobs"].clone();
    assert_eq!(future, serde_json::json!([]));
    for bad in [
        vec!["jobs", "list", "--since", "yesterday"],
        vec!["jobs", "prune", "--older-than", "soon"],
        vec!["jobs", "show", "no-such-job"],
    ] {
        let run = db.cmd(&bad);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    }
    assert_eq!(
        db.cmd_ok(&["jobs", "list"])["jobs"]
            .as_array()
            .map_or(0, Vec::len),
        all
    );

    // Prune keeps recent jobs, and removes ended ones older than the cutoff.
    assert_eq!(
        db.cmd_ok(&["jobs", "prune", "--older-than", "1h"])["pruned"],
        0
    );
    std::thread::sleep(Duration::from_millis(20));
    let pruned = db.cmd_ok(&["jobs", "prune", "--older-than", "1ms"])["pruned"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(pruned as usize, all);
    let left = db.cmd_ok(&["jobs", "list"])["jobs"].clone();
    assert!(
        left.as_array()
            .is_some_and(|j| j.iter().all(|j| j["job_type"] == "job_retention")),
        "{left}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let db = setup("SHARED", "t", 1);
    for _ in 0..30 {
        db.ok("FLUSH TABLE app.t");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args(["jobs", "list", "--data-dir", db.path()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader goes away before kalamctl writes (as with `| head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(13), // SIGPIPE: the default disposition, as with other Unix tools
        "{stderr}"
    );
}

/// The deletion job of `app.t`.
fn deletion_job(db: &Db) -> Value {
    let jobs = db.cmd_ok(&["jobs", "list", "--type", "table_deletion"])["jobs"].clone();
    jobs.as_array()
        .and_then(|j| j.first())
        .cloned()
        .expect("a deletion job")
}

#[test]
fn sigint_and_sigterm_stop_a_drop_cleanly_with_exit_5() {
    let drop_args = |db: &Db| -> Vec<String> {
        [
            "table",
            "drop",
            "app.t",
            "--data-dir",
            db.path(),
            "--format",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Before the table leaves the catalog (its safe point): cancelled, nothing changed.
    let db = setup("USER", "t", 40);
    let files_before = common::snapshot(&db.storage());
    let args = drop_args(&db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = common::kalamctl_signalled_after(
        &args,
        &[("FAILPOINTS", "table_deletion.recorded=sleep(1500)")],
        libc::SIGINT,
        400,
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("cancelled"), "{}", run.stderr);
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert_eq!(deletion_job(&db)["status"], "cancelled");
    assert_eq!(deletion_job(&db)["error_code"], "cancelled");
    assert_eq!(
        db.rows("SHOW TABLES IN app").len(),
        2,
        "the table is intact"
    );
    assert_eq!(
        common::snapshot(&db.storage()),
        files_before,
        "no file touched"
    );

    // Mid-way through its Parquet files: paused where it stopped, exit 5, the fix named.
    let db = setup("USER", "t", 40);
    let args = drop_args(&db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let slow = [("FAILPOINTS", "table_deletion.cold_file=sleep(60)")];
    let run = common::kalamctl_signalled_after(&args, &slow, libc::SIGTERM, 900);
    assert_eq!(run.code, 5, "{}", run.stderr);
    let job = deletion_job(&db);
    let id = job["job_id"].as_str().expect("id").to_string();
    assert!(
        run.stderr.contains(&format!("kalamctl jobs resume {id}")),
        "{}",
        run.stderr
    );
    assert_eq!(job["status"], "paused", "{job}");
    assert_eq!(job["step"], "hot_dropped", "stopped mid-step: {job}");
    let done = job["progress"]["items_done"].as_u64().unwrap_or(0);
    assert!(
        done > 0 && done < 40,
        "the signal landed mid-deletion: {job}"
    );

    // A resume interrupted in turn stays paused, and keeps its count.
    let run = common::kalamctl_signalled_after(
        &["jobs", "resume", &id, "--data-dir", db.path()],
        &slow,
        libc::SIGINT,
        700,
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
    let job = deletion_job(&db);
    assert_eq!(job["status"], "paused", "{job}");
    assert!(
        job["progress"]["items_done"].as_u64().unwrap_or(0) > done,
        "{job}"
    );
    // Finished without a signal: everything is gone, and the counts add up.
    let finished = db.cmd_ok(&["jobs", "resume", &id]);
    assert_eq!(finished["report"]["files_deleted"], 40, "{finished}");
    assert_gone(&db, "t");
}
