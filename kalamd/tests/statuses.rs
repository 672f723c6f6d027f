//! The HTTP statuses of `specs/http.md` that need a particular moment to happen: a request
//! past its time limit, a body past its size limit, a job cancelled or a table already being
//! dropped, a locked backup repository, corrupt or unwritable storage, and a server still
//! opening its data directory. Each is produced for real and its JSON error shape checked.
//! (400, 401, 403 and 404 are in `api.rs`.)

mod common;
use std::time::{Duration, Instant};

use common::{ADMIN, Daemon, kalamctl_json, running_job};
use serde_json::{Value, json};

/// `(status, error.code)` of an answer.
fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or(""))
}

/// POSTs `sql` on a thread; the answer comes back through the handle.
fn in_background(d: &Daemon, sql: &str) -> std::thread::JoinHandle<(u16, Value)> {
    let (url, sql) = (d.url("/v1/api/sql"), sql.to_string());
    std::thread::spawn(move || common::post_sql(&common::agent(), &url, Some(ADMIN), None, &sql))
}

#[test]
fn a_drop_that_is_already_running_or_cancelled_answers_409() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    // Each drop pauses right after its job row is written, before the table leaves the catalog.
    let d = Daemon::start_with_env(
        tmp.path(),
        "",
        &[("FAILPOINTS", "table_deletion.recorded=sleep(2500)")],
    );
    let setup = d.sql(
        ADMIN,
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)",
    );
    assert_eq!(setup.0, 200, "{}", setup.1);

    let first = in_background(&d, "DROP TABLE app.t");
    let id = running_job(&data, "table_deletion");
    // A second drop of the same table while the first is unfinished: 409 conflict, naming it.
    let second = d.sql(ADMIN, "DROP TABLE app.t");
    assert_eq!(code(&second), (409, "conflict"), "{}", second.1);
    let message = second.1["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&id), "the job is named: {message}");

    // Cancelled at its safe point, before the table leaves the catalog: 409 cancelled.
    let (exit, out, stderr) = kalamctl_json(&["jobs", "cancel", &id], &data);
    assert_eq!(exit, 0, "{out} {stderr}");
    let first = first.join().expect("first drop");
    assert_eq!(code(&first), (409, "cancelled"), "{}", first.1);
    assert_eq!(
        d.rows(ADMIN, "SELECT count(*) AS n FROM app.t"),
        vec![json!({"n": 2})],
        "the cancelled drop changed nothing"
    );
    let (_, shown, _) = kalamctl_json(&["jobs", "show", &id], &data);
    assert_eq!(shown["job"]["status"], "cancelled", "{shown}");
}

#[test]
fn a_backup_repository_held_by_another_backup_answers_409_locked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    // The first backup holds the repository while it waits before writing its manifest.
    let d = Daemon::start_with_env(
        tmp.path(),
        "",
        &[("FAILPOINTS", "backup.copied=sleep(2500)")],
    );
    assert_eq!(d.sql(ADMIN, "CREATE NAMESPACE app").0, 200);
    let first = in_background(&d, &format!("BACKUP DATABASE TO '{}'", repo.display()));
    running_job(&tmp.path().join("data"), "backup");
    let second = d.sql(ADMIN, &format!("BACKUP DATABASE TO '{}'", repo.display()));
    assert_eq!(code(&second), (409, "locked"), "{}", second.1);
    // kalamctl's online client reads the same code: exit 4, as offline.
    let online = std::process::Command::new(common::kalamctl_path())
        .args(["backup", "create", "--server", &d.url(""), "--token", ADMIN])
        .args(["--to", repo.to_str().expect("utf8")])
        .output()
        .expect("kalamctl");
    let stderr = String::from_utf8_lossy(&online.stderr);
    assert_eq!(online.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let first = first.join().expect("first backup");
    assert_eq!(first.0, 200, "the first backup finished: {}", first.1);
}

#[test]
fn a_slow_request_answers_408_and_a_large_body_413_in_the_error_shape() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    // A backup that takes longer than the request limit.
    let d = Daemon::start_with_env(
        tmp.path(),
        "limits:\n  request_timeout_seconds: 1\n  max_body_bytes: 4096\n",
        &[("FAILPOINTS", "backup.copied=sleep(2500)")],
    );
    let setup = d.sql(
        ADMIN,
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1)",
    );
    assert_eq!(setup.0, 200, "{}", setup.1);
    let slow = d.sql(ADMIN, &format!("BACKUP DATABASE TO '{}'", repo.display()));
    assert_eq!(code(&slow), (408, "timeout"), "{}", slow.1);
    assert!(
        slow.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("limits.request_timeout_seconds")),
        "{}",
        slow.1
    );

    let big = format!("SELECT '{}'", "x".repeat(5000));
    let large = d.sql(ADMIN, &big);
    assert_eq!(code(&large), (413, "too_large"), "{}", large.1);

    // The timeout did not stop the backup: it completes on its own thread.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = d.rows(
            ADMIN,
            "SELECT status FROM system.jobs WHERE job_type = 'backup'",
        );
        if rows == vec![json!({"status": "completed"})] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backup never completed: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn corrupt_storage_answers_500_integrity_and_unwritable_storage_500_internal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    let setup = d.sql(
        ADMIN,
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2); FLUSH TABLE app.t; CREATE SHARED TABLE app.u (id INT PRIMARY KEY); INSERT INTO app.u VALUES (1)",
    );
    assert_eq!(setup.0, 200, "{}", setup.1);

    // A Parquet file overwritten with garbage: integrity.
    let dir = tmp.path().join("data/storage/app/t");
    let file = std::fs::read_dir(&dir)
        .expect("table dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("a batch file");
    std::fs::write(&file, b"not parquet at all").expect("corrupt");
    let read = d.sql(ADMIN, "SELECT * FROM app.t");
    assert_eq!(code(&read), (500, "integrity"), "{}", read.1);

    // The place the next flush must write to is a file, not a directory: internal, and the
    // rows stay in the hot tier (seen once the file is out of the way).
    let blocker = tmp.path().join("data/storage/app/u");
    std::fs::write(&blocker, b"in the way").expect("block");
    let flush = d.sql(ADMIN, "FLUSH TABLE app.u");
    assert_eq!(code(&flush), (500, "internal"), "{}", flush.1);
    std::fs::remove_file(&blocker).expect("unblock");
    assert_eq!(
        d.rows(ADMIN, "SELECT count(*) AS n FROM app.u"),
        vec![json!({"n": 1})]
    );
}

#[test]
fn sql_while_the_data_directory_opens_answers_503() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::spawn_with_env(
        tmp.path(),
        "",
        &[("FAILPOINTS", "kalamd.opening=sleep(3000)")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let answer = d.get("/ready", None);
        if answer.0 != 0 {
            break answer;
        }
        assert!(Instant::now() < deadline, "kalamd never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains("opening"), "{}", ready.1);
    let early = d.sql(ADMIN, "SELECT 1");
    assert_eq!(code(&early), (503, "unavailable"), "{}", early.1);
    d.wait_ready();
    assert_eq!(d.sql(ADMIN, "SELECT 1").0, 200);
}
