//! Tables on an S3 storage location, against a real S3-compatible server on loopback (moto's,
//! one process per test): flush writes Parquet objects there and nothing locally, reads merge
//! hot rows with those objects, a large file goes up as a multipart upload, DROP TABLE empties
//! the table's prefix, a server that stops answering mid-flush loses nothing, and a location
//! whose credentials profile is not configured is named with the fix.

mod common;

use std::time::{Duration, Instant};

use common::{Db, files_under};
use kalamdb_core::cold::object::{Profile, add_profile};
use kalamdb_fixtures::s3::S3Server;
use serde_json::{Value, json};

/// A server with bucket `lake`, and a profile `name` that reaches it.
fn server(name: &str, timeout_seconds: u64) -> S3Server {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    add_profile(
        name,
        Profile {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
            region: Some("us-east-1".into()),
            endpoint: Some(s3.endpoint()),
            allow_http: true,
            timeout_seconds,
        },
    );
    s3
}

/// Rows in a Parquet object, read by a reader of its own (not the engine's).
fn parquet_rows(bytes: Vec<u8>) -> usize {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .expect("a Parquet object")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch").num_rows())
        .sum()
}

/// No path anywhere under `root` was made from an `s3://` URL.
fn nothing_local_from_a_url(root: &std::path::Path) {
    let all = files_under(root);
    assert!(
        all.iter()
            .all(|f| !f.contains("s3:") && !f.contains("lake/")),
        "{all:?}"
    );
}

#[test]
fn tables_on_an_s3_location_flush_read_and_drop_there() {
    let s3 = server("os-e2e", 30);
    let db = Db::new();
    db.ok("CREATE STORAGE lake TYPE s3 PATH 's3://lake/v1' CREDENTIALS 'os-e2e'");
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT) WITH (STORAGE = 'lake')");
    db.ok("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT) WITH (STORAGE = 'lake')");
    for i in 0..50 {
        db.ok_as(
            Some("alice"),
            &format!("INSERT INTO app.notes VALUES ({i}, 'note {i}')"),
        );
    }
    db.ok_as(Some("bob"), "INSERT INTO app.notes VALUES (1, 'bob 1')");
    db.ok("INSERT INTO app.cfg VALUES ('theme', 'dark'), ('lang', 'en')");
    db.ok("FLUSH TABLE app.notes; FLUSH TABLE app.cfg");

    let keys = s3.keys("lake", "v1/");
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys[0].starts_with("v1/app/cfg/batch-"), "{keys:?}");
    assert!(keys[1].starts_with("v1/app/notes/alice/batch-"), "{keys:?}");
    assert!(keys[2].starts_with("v1/app/notes/bob/batch-"), "{keys:?}");
    assert_eq!(parquet_rows(s3.get("lake", &keys[1])), 50);
    assert_eq!(parquet_rows(s3.get("lake", &keys[0])), 2);
    nothing_local_from_a_url(db.dir.parent().expect("tmp"));
    assert!(files_under(&db.storage()).is_empty());
    let recorded = db.rows(
        "SELECT path, size, row_count FROM system.cold_batches WHERE table_name = 'notes' ORDER BY user_id",
    );
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        recorded[0]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("app/notes/alice/"))
    );

    // Hot rows over cold objects: an update, a soft delete, a new row.
    db.ok_as(
        Some("alice"),
        "UPDATE app.notes SET body = 'edited' WHERE id = 7",
    );
    db.ok_as(Some("alice"), "DELETE FROM app.notes WHERE id = 8");
    db.ok_as(Some("alice"), "INSERT INTO app.notes VALUES (100, 'hot')");
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT count(*) AS n FROM app.notes"),
        vec![json!({"n": 50})]
    );
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT body FROM app.notes WHERE id = 7"),
        vec![json!({"body": "edited"})]
    );
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT body FROM app.notes WHERE id = 3"),
        vec![json!({"body": "note 3"})],
        "a point lookup reads the flushed object"
    );
    assert!(
        db.rows_as(Some("alice"), "SELECT body FROM app.notes WHERE id = 8")
            .is_empty()
    );
    assert_eq!(
        db.rows_as(Some("bob"), "SELECT id, body FROM app.notes"),
        vec![json!({"id": 1, "body": "bob 1"})],
        "each user reads their own objects"
    );
    db.fails(
        "INSERT INTO app.cfg VALUES ('theme', 'light')",
        2,
        "already exists",
    );
    // A second flush adds objects; reads still merge.
    db.ok("FLUSH TABLE app.notes");
    assert_eq!(s3.keys("lake", "v1/app/notes/alice/").len(), 2);
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT body FROM app.notes WHERE id = 7"),
        vec![json!({"body": "edited"})]
    );

    db.ok("DROP USER TABLE app.notes; DROP TABLE app.cfg");
    assert_eq!(
        s3.keys("lake", "v1/"),
        Vec::<String>::new(),
        "the prefix is empty"
    );
    let jobs = db.rows(
        "SELECT status, result FROM system.jobs WHERE job_type = 'table_deletion' ORDER BY start_time",
    );
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let result: Value =
        serde_json::from_str(jobs[0]["result"].as_str().unwrap_or("{}")).expect("result is JSON");
    assert_eq!(jobs[0]["status"], "completed");
    assert_eq!(result["files_deleted"], 3, "{result}");
    assert_eq!(result["left_behind"], Value::Null, "{result}");
}

#[test]
fn a_large_batch_file_goes_up_as_a_multipart_upload() {
    let s3 = server("os-multipart", 30);
    let db = Db::new();
    db.ok("CREATE STORAGE lake TYPE s3 PATH 's3://lake' CREDENTIALS 'os-multipart'");
    db.ok("CREATE NAMESPACE app");
    db.ok(
        "CREATE SHARED TABLE app.blobs (id BIGINT PRIMARY KEY, body TEXT) WITH (STORAGE = 'lake')",
    );
    // Text that compresses little: ~10 MiB of Parquet, past one 8 MiB part.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for chunk in 0..80 {
        let values: Vec<String> = (0..500)
            .map(|i| {
                let body = kalamdb_fixtures::noise_text(&mut seed, 400);
                format!("({}, '{body}')", chunk * 500 + i)
            })
            .collect();
        db.ok(&format!(
            "INSERT INTO app.blobs VALUES {}",
            values.join(", ")
        ));
    }
    db.ok("FLUSH TABLE app.blobs");
    let keys = s3.keys("lake", "app/blobs/");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let bytes = s3.get("lake", &keys[0]);
    assert!(
        bytes.len() > 8 << 20,
        "{} bytes: not past one part",
        bytes.len()
    );
    assert_eq!(parquet_rows(bytes), 40_000);
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM app.blobs"),
        vec![json!({"n": 40000})]
    );
    let recorded = db.rows("SELECT size FROM system.cold_batches WHERE table_name = 'blobs'");
    assert_eq!(recorded.len(), 1);
    assert_eq!(s3.pending_uploads("lake"), 0, "the upload was completed");
}

#[test]
fn a_server_that_stops_answering_mid_flush_loses_nothing() {
    let s3 = server("os-stopped", 1);
    let db = Db::new();
    db.engine().set_flush_file_rows(100);
    db.ok("CREATE STORAGE lake TYPE s3 PATH 's3://lake' CREDENTIALS 'os-stopped'");
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE = 'lake')");
    for chunk in 0..20 {
        let values: Vec<String> = (0..100)
            .map(|i| format!("({}, 'v{i}')", chunk * 100 + i))
            .collect();
        db.ok(&format!("INSERT INTO app.t VALUES {}", values.join(", ")));
    }
    // 20 files of 100 rows; the server stops answering once a few are up.
    let stopped = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                let up = s3.keys("lake", "app/t/").len();
                if up >= 3 {
                    s3.pause();
                    return up;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            0
        });
        let flushed = db.sql_as(None, "FLUSH TABLE app.t");
        let up = watcher.join().expect("watcher");
        (flushed, up)
    });
    let (flushed, up_when_stopped) = stopped;
    let err = flushed.expect_err("the flush fails while the server does not answer");
    assert!(err.to_string().contains("object storage"), "{err}");
    s3.resume();
    let up = s3.keys("lake", "app/t/").len();
    assert!(
        (3..20).contains(&up_when_stopped) && up < 20,
        "the stop landed mid-flush: {up_when_stopped} objects up when stopped, {up} after"
    );
    let job = db.rows("SELECT status, error_message FROM system.jobs WHERE job_type = 'flush'");
    assert_eq!(job.len(), 1, "{job:?}");
    assert_eq!(job[0]["status"], "failed", "{job:?}");
    // Nothing is lost: every row is readable, from whichever tier holds it.
    assert_eq!(
        db.rows("SELECT count(*) AS n, sum(id) AS s FROM app.t"),
        vec![json!({"n": 2000, "s": 1999 * 2000 / 2})]
    );
    // The flush runs again and finishes the move.
    db.ok("FLUSH TABLE app.t");
    assert_eq!(
        db.rows("SELECT count(*) AS n, sum(id) AS s FROM app.t"),
        vec![json!({"n": 2000, "s": 1999 * 2000 / 2})]
    );
    let recorded = db.rows("SELECT sum(row_count) AS n FROM system.cold_batches");
    assert_eq!(recorded, vec![json!({"n": 2000})]);
    assert_eq!(s3.keys("lake", "app/t/").len(), 20);
    assert_eq!(s3.pending_uploads("lake"), 0);
}

#[test]
fn a_location_whose_profile_is_not_configured_is_named_with_the_fix() {
    let s3 = server("os-named", 30);
    let db = Db::new();
    db.ok("CREATE STORAGE lake TYPE s3 PATH 's3://lake' CREDENTIALS 'os-named'");
    db.ok("CREATE STORAGE dark TYPE s3 PATH 's3://lake/dark' CREDENTIALS 'os-undefined'");
    db.ok("CREATE NAMESPACE app");
    db.fails(
        "CREATE SHARED TABLE app.x (id INT PRIMARY KEY) WITH (STORAGE = 'dark')",
        2,
        "add storage.credentials.os-undefined to the config file",
    );
    db.ok("CREATE SHARED TABLE app.t (id INT PRIMARY KEY) WITH (STORAGE = 'lake')");
    db.ok("INSERT INTO app.t VALUES (1), (2)");
    db.ok("FLUSH TABLE app.t");
    db.ok("INSERT INTO app.t VALUES (3)");
    // The profile name changes to one the configuration lacks: every touch of the files is
    // refused with the location and the fix, nothing is half-done, and the rows stay.
    db.ok("ALTER STORAGE lake SET CREDENTIALS 'os-missing'");
    for sql in [
        "SELECT count(*) FROM app.t",
        "FLUSH TABLE app.t",
        "DROP TABLE app.t",
    ] {
        db.fails(sql, 2, "credentials profile 'os-missing'");
    }
    let shown = db.rows("SHOW STORAGES");
    assert!(
        shown.iter().all(|r| !r.to_string().contains("test")),
        "{shown:?}"
    );
    db.ok("ALTER STORAGE lake SET CREDENTIALS 'os-named'");
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM app.t"),
        vec![json!({"n": 3})]
    );
    assert_eq!(s3.keys("lake", "app/t/").len(), 1);
}

#[test]
fn a_server_that_refuses_the_credentials_is_named_with_the_fix() {
    let (s3, id, secret) = S3Server::start_checking_credentials(&["lake"]);
    let profile = |secret: &str| Profile {
        access_key_id: id.clone(),
        secret_access_key: secret.into(),
        session_token: None,
        region: Some("us-east-1".into()),
        endpoint: Some(s3.endpoint()),
        allow_http: true,
        timeout_seconds: 30,
    };
    add_profile("os-right", profile(&secret));
    add_profile("os-wrong", profile("not-the-secret"));
    let db = Db::new();
    db.ok("CREATE STORAGE lake TYPE s3 PATH 's3://lake' CREDENTIALS 'os-right'");
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE SHARED TABLE app.t (id INT PRIMARY KEY) WITH (STORAGE = 'lake')");
    db.ok("INSERT INTO app.t VALUES (1), (2)");
    // The server checks signatures, and the engine's requests pass with the right secret.
    db.ok("FLUSH TABLE app.t");
    db.ok("INSERT INTO app.t VALUES (3)");
    // With a wrong secret every touch of the objects is refused in one line naming the
    // profile, the server's reason and the fix; the flush job fails; no row is lost.
    db.ok("ALTER STORAGE lake SET CREDENTIALS 'os-wrong'");
    for sql in ["SELECT count(*) FROM app.t", "FLUSH TABLE app.t"] {
        let err = db.fails(
            sql,
            2,
            "the server refused the credentials of profile 'os-wrong' (SignatureDoesNotMatch, HTTP 403); check access_key_id and secret_access_key of storage.credentials.os-wrong",
        );
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        assert!(!err.to_string().contains("not-the-secret"), "{err}");
    }
    let jobs = db.rows("SELECT status FROM system.jobs WHERE job_type = 'flush' ORDER BY status");
    assert_eq!(
        jobs,
        vec![json!({"status": "completed"}), json!({"status": "failed"})]
    );
    db.ok("ALTER STORAGE lake SET CREDENTIALS 'os-right'");
    assert_eq!(
        db.rows("SELECT count(*) AS n, sum(id) AS s FROM app.t"),
        vec![json!({"n": 3, "s": 6})]
    );
    db.ok("FLUSH TABLE app.t");
    assert_eq!(
        db.rows("SELECT count(*) AS n, sum(row_count) AS r FROM system.cold_batches"),
        vec![json!({"n": 2, "r": 3})]
    );
}
