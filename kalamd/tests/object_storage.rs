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
