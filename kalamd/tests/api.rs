//! The HTTP API: authentication matrix, user isolation, error shapes and metrics.

mod common;
use common::{ADMIN, ALICE, BOB, Daemon};
use serde_json::json;

#[test]
fn authentication_matrix_and_user_isolation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");

    // Liveness and readiness need no token; everything else does.
    assert_eq!(d.get("/health", None).0, 200);
    assert_eq!(d.get("/ready", None).0, 200);
    assert_eq!(d.get("/metrics", None).0, 401);
    let (status, body) = d.sql_with(None, None, "SELECT 1");
    assert_eq!(status, 401);
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        d.sql_with(Some("wrong-token-0123456789"), None, "SELECT 1")
            .0,
        401
    );

    let (status, body) = d.sql(
        ADMIN,
        "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert!(body["execution_time_ms"].is_u64());

    // Users write and read only their own rows.
    assert_eq!(
        d.sql(ALICE, "INSERT INTO app.notes VALUES (1, 'alice; one')")
            .0,
        200
    );
    assert_eq!(
        d.sql(BOB, "INSERT INTO app.notes VALUES (1, 'bob one')").0,
        200
    );
    assert_eq!(
        d.rows(ALICE, "SELECT body FROM app.notes"),
        vec![json!({"body": "alice; one"})]
    );
    assert_eq!(
        d.rows(BOB, "SELECT body FROM app.notes"),
        vec![json!({"body": "bob one"})]
    );

    // An admin acts as a user with X-Kalam-User-Id; a user may not.
    let (status, body) = d.sql_with(Some(ADMIN), Some("alice"), "SELECT body FROM app.notes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["rows"], json!([{"body": "alice; one"}]));
    assert_eq!(
        d.sql_with(Some(ALICE), Some("bob"), "SELECT body FROM app.notes")
            .0,
        403
    );

    // system.* and DDL are forbidden to users.
    let (status, body) = d.sql(ALICE, "SELECT * FROM system.users");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(d.sql(ALICE, "CREATE NAMESPACE mine").0, 403);
    assert_eq!(
        d.sql(ADMIN, "SELECT count(*) AS n FROM system.tables").0,
        200
    );

    // Error statuses.
    let (status, body) = d.sql(ADMIN, "SELEKT nonsense");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = d.sql(ADMIN, "SELECT * FROM app.nope");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = d.sql(ALICE, "INSERT INTO app.notes VALUES (1, 'dup')");
    assert_eq!(status, 400);
    let bad_body = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(d.url("/v1/api/sql"))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send("not json");
    assert_eq!(bad_body.map(|r| r.status().as_u16()).unwrap_or(0), 400);
    assert_eq!(d.get("/nope", Some(ADMIN)).0, 404);
}

#[test]
fn metrics_report_requests_rows_jobs_and_sizes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    d.sql(
        ADMIN,
        "CREATE NAMESPACE m; CREATE SHARED TABLE m.t (id INT PRIMARY KEY)",
    );
    d.sql(
        ADMIN,
        "INSERT INTO m.t VALUES (1), (2), (3); FLUSH TABLE m.t",
    );
    let (status, text) = d.get("/metrics", Some(ALICE));
    assert_eq!(status, 200);
    for needle in [
        r#"kalamdb_http_requests_total{method="POST",path="/v1/api/sql",status="200"} 2"#,
        "kalamdb_http_request_duration_seconds_bucket",
        "kalamdb_rows_written_total 3",
        "kalamdb_flushes_total 1",
        "kalamdb_rows_flushed_total 3",
        r#"kalamdb_jobs{job_type="flush",status="completed"} 1"#,
        "kalamdb_rocksdb_size_bytes",
        "kalamdb_parquet_size_bytes",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
    let parquet: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kalamdb_parquet_size_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("parquet size");
    assert!(parquet > 0, "a flushed table has Parquet bytes");
}

/// `kalamctl live` against this daemon: (exit code, stdout, stderr).
fn live(d: &Daemon, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(common::kalamctl_path())
        .arg("live")
        .args(args)
        .args(["--server", &d.url(""), "--token", token])
        .output()
        .expect("kalamctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kalamctl_lists_and_kills_a_servers_live_queries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    let (code, out, err) = live(&d, ADMIN, &["list", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(listed["live_queries"], serde_json::json!([]), "{out}");
    let (code, out, _) = live(&d, ADMIN, &["list"]);
    assert_eq!((code, out.trim()), (0, "no live queries"));
    // What kalamd answers, with its exit code: an unknown id, and a user token.
    let (code, _, err) = live(&d, ADMIN, &["kill", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no live query 'nope'"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, _, err) = live(&d, ALICE, &["list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("admin"), "{err}");
}

#[test]
fn ready_names_the_tables_on_storage_whose_credentials_are_not_configured() {
    let tmp = tempfile::tempdir().expect("tmp");
    {
        // A migrated table on an object-storage location with no profile, as a legacy
        // directory can carry.
        let engine = kalamdb_core::Engine::init(tmp.path().join("data"), "test").expect("init");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(engine.execute(
                &kalamdb_core::Session::admin(),
                "CREATE STORAGE lake TYPE s3 PATH 's3://bucket/v1'; CREATE NAMESPACE app; CREATE SHARED TABLE app.x (id BIGINT PRIMARY KEY)",
            ))
            .expect("setup");
        let mut t = engine
            .sql()
            .tables()
            .get("app:x")
            .expect("get")
            .expect("table");
        t.storage_location = "lake".into();
        engine.sql().tables().put(&t).expect("put");
    }
    let d = Daemon::start_with_env(tmp.path(), "", &[("AWS_ACCESS_KEY_ID", "")]);
    let (status, body) = d.get("/ready", None);
    assert_eq!(status, 200, "queries are still served: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["status"], "degraded", "{body}");
    let why = body["failing"]["storage"].as_str().unwrap_or_default();
    assert!(
        why.contains("'lake'") && why.contains("app.x") && why.contains("AWS_ACCESS_KEY_ID"),
        "{body}"
    );
    // Its rows in RocksDB are served; what needs its objects is refused with the fix, and
    // nothing changes.
    assert_eq!(d.sql(ADMIN, "INSERT INTO app.x VALUES (1)").0, 200);
    assert_eq!(
        d.rows(ADMIN, "SELECT id FROM app.x"),
        vec![serde_json::json!({"id": 1})]
    );
    for sql in ["FLUSH TABLE app.x", "DROP TABLE app.x"] {
        let (status, refused) = d.sql(ADMIN, sql);
        assert_eq!(status, 409, "{sql}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("storage location 'lake'"), "{refused}");
    }
    assert_eq!(d.rows(ADMIN, "SELECT id FROM app.x").len(), 1);
}
