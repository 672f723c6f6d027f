//! kalamd with tables on an S3 storage location, end to end over HTTP, against a real
//! S3-compatible server on loopback (moto's): the credentials profile comes from kalamd's
//! config file, flush writes objects to the bucket and nothing locally, reads merge, `kalamctl
//! verify --config` checks the objects (and without the config says it could not), a backup
//! carries the objects into a restore that verifies clean, and DROP TABLE empties the prefix.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ADMIN, ALICE, Daemon, kalamctl_path};
use kalamdb_fixtures::s3::S3Server;
use kalamdb_fixtures::tree::files_under;
use serde_json::{Value, json};

fn credentials(s3: &S3Server) -> String {
    format!(
        "storage:\n  credentials:\n    local-s3:\n      access_key_id: test\n      secret_access_key: s3cr3t-never-shown\n      endpoint: {}\n      allow_http: true\n",
        s3.endpoint()
    )
}

fn kalamctl(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(kalamctl_path())
        .args(args)
        .args(["--format", "json"])
        .env_remove("KALAMDB_CONFIG")
        .output()
        .expect("kalamctl");
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(d: &Daemon, token: &str, sql: &str) -> Value {
    let (status, body) = d.sql(token, sql);
    assert_eq!(status, 200, "`{sql}`: {body}");
    body
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn tables_on_s3_through_kalamd_flush_verify_back_up_and_drop() {
    let s3 = S3Server::start();
    s3.create_bucket("archive");
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), &credentials(&s3));
    let config = tmp.path().join("kalamd.yaml");
    let data = tmp.path().join("data");
    ok(
        &d,
        ADMIN,
        "CREATE STORAGE archive TYPE s3 PATH 's3://archive/v1/shared' CREDENTIALS 'local-s3'",
    );
    ok(&d, ADMIN, "CREATE NAMESPACE app");
    ok(
        &d,
        ADMIN,
        "CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT) WITH (STORAGE = 'archive')",
    );
    ok(
        &d,
        ADMIN,
        "CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT) WITH (STORAGE = 'archive')",
    );
    ok(
        &d,
        ALICE,
        "INSERT INTO app.notes VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    );
    ok(&d, ADMIN, "INSERT INTO app.cfg VALUES ('theme', 'dark')");
    ok(&d, ADMIN, "FLUSH TABLE app.notes; FLUSH TABLE app.cfg");
    let keys = s3.keys("archive", "v1/shared/");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].starts_with("v1/shared/app/cfg/batch-"), "{keys:?}");
    assert!(
        keys[1].starts_with("v1/shared/app/notes/alice/batch-"),
        "{keys:?}"
    );
    let local = files_under(&data);
    assert!(
        local
            .iter()
            .all(|f| !f.contains("s3:") && !f.contains(".parquet")),
        "nothing local: {local:?}"
    );
    ok(&d, ALICE, "UPDATE app.notes SET body = 'TWO' WHERE id = 2");
    assert_eq!(
        d.rows(ALICE, "SELECT id, body FROM app.notes ORDER BY id"),
        vec![
            json!({"id": 1, "body": "one"}),
            json!({"id": 2, "body": "TWO"}),
            json!({"id": 3, "body": "three"}),
        ]
    );
    // Another engine reads the same objects: plain Parquet on S3.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/read-s3-parquet.py");
    let read = Command::new("python3")
        .arg(&script)
        .args([s3.endpoint().as_str(), "archive", "v1/shared/app/notes"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("python3");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let read: Value = serde_json::from_slice(&read.stdout).expect("json");
    assert_eq!(
        (read["files"].clone(), read["rows"].clone()),
        (json!(1), json!(3)),
        "{read}"
    );
    assert!(
        read["columns"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("body")) && c.contains(&json!("_row_id"))),
        "{read}"
    );
    let shown = d.rows(ADMIN, "SHOW STORAGES").to_vec();
    assert!(
        !Value::Array(shown.clone()).to_string().contains("s3cr3t"),
        "{shown:?}"
    );

    // verify reads the objects with the config's profile; without it, it says it could not.
    let (code, report, stderr) = kalamctl(&[
        "verify",
        "--data-dir",
        path(&data),
        "--config",
        path(&config),
    ]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["summary"]["parquet_files"], 2, "{report}");
    let (code, report, _) = kalamctl(&["verify", "--data-dir", path(&data)]);
    assert_eq!(code, 1, "a warning, not a pass: {report}");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["code"].as_str()).collect())
        .unwrap_or_default();
    assert!(codes.contains(&"location.unreachable"), "{report}");

    // A backup carries the objects; the restored copy keeps them locally, verifies clean,
    // and never touches the bucket.
    let repo = tmp.path().join("repo");
    let body = ok(&d, ADMIN, &format!("BACKUP DATABASE TO '{}'", path(&repo)));
    assert_eq!(
        body["results"][0]["rows"][0]["status"], "completed",
        "{body}"
    );
    let restored = tmp.path().join("restored");
    let (code, out, stderr) =
        kalamctl(&["backup", "restore", path(&repo), "--to", path(&restored)]);
    assert_eq!(code, 0, "{out} {stderr}");
    let restored_files = files_under(&restored);
    assert_eq!(
        restored_files
            .iter()
            .filter(
                |f| f.starts_with("external/s3/archive/v1/shared/app/") && f.ends_with(".parquet")
            )
            .count(),
        2,
        "{restored_files:?}"
    );
    let (code, report, stderr) = kalamctl(&["verify", "--data-dir", path(&restored)]);
    assert_eq!(code, 0, "{report} {stderr}");
    let (code, rows, stderr) = kalamctl(&[
        "sql",
        "--data-dir",
        path(&restored),
        "--user",
        "alice",
        "SELECT id, body FROM app.notes ORDER BY id",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows["results"][0]["rows"][1]["body"], "TWO", "{rows}");

    // The same online, into an S3 repository in the same bucket, restored from there: the
    // two cold objects are copied server-side (read once to hash them, never uploaded), and
    // nothing is left under the repository's tmp/.
    let to_s3 = "BACKUP DATABASE TO 's3://archive/backups' CREDENTIALS 'local-s3'";
    let body = ok(&d, ADMIN, to_s3);
    let row = &body["results"][0]["rows"][0];
    assert_eq!(row["status"], "completed", "{body}");
    assert_eq!(row["server_side_copies"], 2, "{body}");
    assert_eq!(s3.keys("archive", "backups/tmp/"), Vec::<String>::new());
    // Unchanged objects match the first backup by name, size and time: nothing copied.
    let again = ok(&d, ADMIN, to_s3);
    let row = &again["results"][0]["rows"][0];
    assert_eq!(row["status"], "completed", "{again}");
    assert_eq!(row["server_side_copies"], 0, "{again}");
    assert_eq!(s3.keys("archive", "backups/tmp/"), Vec::<String>::new());
    assert!(
        s3.keys("archive", "backups/")
            .contains(&"backups/backups/2.json".to_string()),
        "{:?}",
        s3.keys("archive", "backups/")
    );
    let from_s3 = tmp.path().join("restored-from-s3");
    let (code, out, stderr) = kalamctl(&[
        "backup",
        "restore",
        "s3://archive/backups",
        "--credentials",
        "local-s3",
        "--config",
        path(&config),
        "--to",
        path(&from_s3),
    ]);
    assert_eq!(code, 0, "{out} {stderr}");
    let (code, report, stderr) = kalamctl(&["verify", "--data-dir", path(&from_s3)]);
    assert_eq!(code, 0, "{report} {stderr}");

    ok(&d, ADMIN, "DROP USER TABLE app.notes; DROP TABLE app.cfg");
    assert_eq!(
        s3.keys("archive", "v1/"),
        Vec::<String>::new(),
        "the prefix is empty"
    );
}

#[test]
fn a_bad_credentials_profile_is_refused_with_its_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = common::write_config(
        tmp.path(),
        common::free_port(),
        "storage:\n  credentials:\n    s3:\n      access_key_id: a\n      secret_access_key: b\n      endpoint: http://127.0.0.1:9\n",
    );
    let out = common::kalamd_command(&config)
        .arg("--check-config")
        .output()
        .expect("kalamd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("storage.credentials.s3.endpoint") && stderr.contains("allow_http"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    std::fs::write(
        &config,
        "storage:\n  credentials:\n    s3:\n      access_key: a\n",
    )
    .expect("write");
    let (code, _, stderr) = kalamctl(&[
        "verify",
        "--data-dir",
        path(tmp.path()),
        "--config",
        path(&config),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("storage.credentials"), "{stderr}");
}

/// About 10 MiB of Parquet (text that compresses little) into `app.blobs`: past one 8 MiB
/// part, so a flush uploads it as a multipart upload.
fn load_blobs(d: &Daemon, first: u64) {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ first;
    for chunk in 0..80u64 {
        let values: Vec<String> = (0..500u64)
            .map(|i| {
                let body = kalamdb_fixtures::noise_text(&mut seed, 400);
                format!("({}, '{body}')", first + chunk * 500 + i)
            })
            .collect();
        ok(
            d,
            ADMIN,
            &format!("INSERT INTO app.blobs VALUES {}", values.join(", ")),
        );
    }
}

/// Stops kalamd as systemd does (SIGTERM) and waits for it.
fn stop(mut d: Daemon) {
    d.signal(libc::SIGTERM);
    d.wait(std::time::Duration::from_secs(30));
}

/// Starts a flush of `app.blobs` in kalamd run with a fail point that holds the upload once
/// its first part is up, waits until the server shows the upload open, and kills kalamd -9.
fn kill_mid_upload(dir: &Path, s3: &S3Server) {
    let mut d = Daemon::start_with_env(
        dir,
        &credentials(s3),
        &[("FAILPOINTS", "object.part_sent=sleep(20000)")],
    );
    std::thread::scope(|scope| {
        let flush = scope.spawn(|| d.sql(ADMIN, "FLUSH TABLE app.blobs").0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while s3.pending_uploads("lake") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no multipart upload was seen open"
            );
            assert!(
                !flush.is_finished(),
                "the flush ended before its upload was seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        d.signal(libc::SIGKILL);
        assert_eq!(flush.join().expect("flush"), 0, "no answer: kalamd died");
    });
    d.wait(std::time::Duration::from_secs(10));
}

/// kalamd killed -9 while a flush's multipart upload is open: the upload stays open on the
/// server (the kill landed mid-upload) and on record in `D/uploads/`; every row is still
/// there, hot; the next flush of the table aborts it and completes. Killed again, the
/// table's deletion aborts it. No part is left in the bucket either way.
#[test]
fn an_upload_a_killed_flush_left_open_is_aborted_by_the_next_flush_or_the_drop() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let records = || {
        std::fs::read_dir(data.join("uploads"))
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    {
        let d = Daemon::start(tmp.path(), &credentials(&s3));
        ok(
            &d,
            ADMIN,
            "CREATE STORAGE lake TYPE s3 PATH 's3://lake' CREDENTIALS 'local-s3'",
        );
        ok(&d, ADMIN, "CREATE NAMESPACE app");
        ok(
            &d,
            ADMIN,
            "CREATE SHARED TABLE app.blobs (id BIGINT PRIMARY KEY, body TEXT) WITH (STORAGE = 'lake')",
        );
        load_blobs(&d, 0);
        stop(d);
    }
    kill_mid_upload(tmp.path(), &s3);
    assert_eq!(
        s3.pending_uploads("lake"),
        1,
        "the kill left the upload open"
    );
    assert_eq!(records(), 1, "and on record");
    assert!(s3.keys("lake", "app/").is_empty(), "no object appeared");
    // verify names it while no process runs.
    let config = tmp.path().join("kalamd.yaml");
    let (code, report, stderr) = kalamctl(&[
        "verify",
        "--data-dir",
        path(&data),
        "--config",
        path(&config),
    ]);
    assert_eq!(code, 1, "warnings: {report} {stderr}");
    let open: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "state.upload_open")
        .collect();
    assert_eq!(open.len(), 1, "{report}");
    assert!(
        open[0]["object"]
            .as_str()
            .is_some_and(|o| o.starts_with("s3://lake/app/blobs/batch-")),
        "{report}"
    );

    let d = Daemon::start(tmp.path(), &credentials(&s3));
    let count = "SELECT count(*) AS n, sum(id) AS s FROM app.blobs";
    assert_eq!(
        d.rows(ADMIN, count),
        vec![json!({"n": 40000, "s": 39_999_u64 * 40_000 / 2})]
    );
    ok(&d, ADMIN, "FLUSH TABLE app.blobs");
    assert_eq!(s3.pending_uploads("lake"), 0, "the next flush aborted it");
    assert_eq!(records(), 0);
    assert_eq!(s3.keys("lake", "app/blobs/").len(), 1);
    assert_eq!(
        d.rows(ADMIN, count),
        vec![json!({"n": 40000, "s": 39_999_u64 * 40_000 / 2})]
    );
    load_blobs(&d, 40_000);
    stop(d);

    kill_mid_upload(tmp.path(), &s3);
    assert_eq!(s3.pending_uploads("lake"), 1, "killed again mid-upload");
    assert_eq!(records(), 1);
    let d = Daemon::start(tmp.path(), &credentials(&s3));
    assert_eq!(
        d.rows(ADMIN, count),
        vec![json!({"n": 80000, "s": 79_999_u64 * 80_000 / 2})]
    );
    ok(&d, ADMIN, "DROP TABLE app.blobs");
    assert_eq!(s3.pending_uploads("lake"), 0, "the drop aborted it");
    assert_eq!(records(), 0);
    assert!(s3.keys("lake", "app/").is_empty(), "the prefix is empty");
}
