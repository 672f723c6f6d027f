//! The process: configuration errors, locking, signals, crashes and startup reconciliation.

mod common;
use std::time::Duration;

use common::{ADMIN, ALICE, BOB, Daemon, free_port, kalamctl_path, kalamd_command, write_config};
use serde_json::json;

fn run_with_config(yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("bad.yaml");
    std::fs::write(&path, yaml).expect("write");
    let mut cmd = kalamd_command(&path);
    cmd.arg("--check-config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kalamd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configurations_are_refused_naming_the_key() {
    for (yaml, env, needle) in [
        (
            "listen: 127.0.0.1:1\nbogus: 1\n",
            vec![],
            "bogus: unknown key",
        ),
        (
            "logging:\n  colour: red\n",
            vec![],
            "logging.colour: unknown key; the keys here are format, level",
        ),
        (
            "limits:\n  max_body_bytes: lots\n",
            vec![],
            "max_body_bytes",
        ),
        ("listen: not-an-address\n", vec![], "listen"),
        ("logging:\n  format: xml\n", vec![], "xml"),
        (
            "shutdown:\n  grace_seconds: 0\n",
            vec![],
            "shutdown.grace_seconds",
        ),
        (
            "auth:\n  tokens:\n    - {token: short, user_id: a, role: admin}\n",
            vec![],
            "auth.tokens[0].token",
        ),
        (
            "auth:\n  tokens:\n    - {token: long-enough-token-1, user_id: a, role: root}\n",
            vec![],
            "root",
        ),
        (
            "",
            vec![("KALAMD_LOGGING_COLOUR", "red")],
            "KALAMD_LOGGING_COLOUR",
        ),
        (
            "",
            vec![("KALAMD_SHUTDOWN_GRACE_SECONDS", "soon")],
            "grace_seconds",
        ),
    ] {
        let (code, stderr) = run_with_config(yaml, &env);
        assert_eq!(code, 2, "{yaml:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{yaml:?}: stderr lacks '{needle}': {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
    let (code, _) = run_with_config("listen: 127.0.0.1:9\nlogging:\n  level: debug\n", &[]);
    assert_eq!(code, 0, "a good file passes --check-config");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kalamd.example.yaml");
    let out = kalamd_command(&example)
        .arg("--check-config")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the shipped example parses: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kalamd_command(std::path::Path::new("/nonexistent/kalamd.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_legacy_directory_in_the_original_layout_is_refused_with_the_migrate_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    kalamdb_fixtures::write(kalamdb_fixtures::Generation::G2, &data).expect("fixture");
    let before = kalamdb_fixtures::tree::snapshot(&data);
    let config = write_config(tmp.path(), free_port(), "");
    let out = kalamd_command(&config).output().expect("kalamd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "kalamctl migrate apply --data-dir {}",
            data.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        kalamdb_fixtures::tree::snapshot(&data),
        before,
        "kalamd changed a byte of the legacy directory"
    );
}

#[test]
fn a_second_kalamd_or_an_offline_kalamctl_is_refused_with_the_holders_pid() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    let pid = d.pid().to_string();

    let other = tempfile::tempdir().expect("tmp2");
    let config = write_config(
        other.path(),
        free_port(),
        &format!("data_dir: {}\n", tmp.path().join("data").display()),
    );
    // write_config put its own data_dir first; rewrite it to the running daemon's.
    let text = std::fs::read_to_string(&config).expect("read").replacen(
        &format!("data_dir: {}", other.path().join("data").display()),
        "",
        1,
    );
    std::fs::write(&config, text).expect("write");
    let out = kalamd_command(&config).output().expect("second kalamd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {pid}")) && stderr.contains("kalamd"),
        "{stderr}"
    );

    let out = std::process::Command::new(kalamctl_path())
        .args([
            "sql",
            "--data-dir",
            tmp.path().join("data").to_str().expect("utf8"),
            "SHOW NAMESPACES",
        ])
        .output()
        .expect("kalamctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert_eq!(d.get("/ready", None).0, 200, "the holder is unaffected");
}

#[test]
fn sigterm_drains_then_exits_0_and_keeps_every_acknowledged_write() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start(
        tmp.path(),
        "shutdown:\n  drain_delay_seconds: 2\n  grace_seconds: 20\n",
    );
    assert_eq!(
        d.sql(
            ADMIN,
            "CREATE NAMESPACE app; CREATE USER TABLE app.log (id BIGINT PRIMARY KEY)"
        )
        .0,
        200
    );

    // Writers keep inserting through the shutdown; each remembers what was acknowledged.
    let port = d.port;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut acked = Vec::new();
                for i in 0..100_000_i64 {
                    let id = w * 1_000_000 + i;
                    let res = agent
                        .post(format!("http://127.0.0.1:{port}/v1/api/sql"))
                        .header("Authorization", format!("Bearer {ALICE}"))
                        .send_json(json!({"sql": format!("INSERT INTO app.log VALUES ({id})")}));
                    match res.map(|r| r.status().as_u16()) {
                        Ok(200) => acked.push(id),
                        Ok(503) => {} // draining: refused, not written
                        Ok(other) => panic!("unexpected status {other}"),
                        Err(_) => break, // the listener closed
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    d.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.get("/ready", None).0, 503, "draining reports not ready");
    assert_eq!(d.get("/health", None).0, 200, "but still alive");
    let status = d.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    let acked: Vec<i64> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    assert!(acked.len() > 10, "the writers got going: {}", acked.len());

    let d2 = Daemon::start(tmp.path(), "");
    let n = d2.rows(ALICE, "SELECT count(*) AS n FROM app.log")[0]["n"]
        .as_u64()
        .expect("n") as usize;
    assert!(
        n >= acked.len(),
        "every acknowledged insert survives: {n} rows, {} acknowledged",
        acked.len()
    );
    let missing: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| {
            d2.rows(ALICE, &format!("SELECT id FROM app.log WHERE id = {id}"))
                .is_empty()
        })
        .take(5)
        .collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
}

#[test]
fn kill_9_keeps_acknowledged_writes_and_startup_reconciles_jobs_and_live_queries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start(tmp.path(), "");
    assert_eq!(
        d.sql(
            ADMIN,
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY, v TEXT)"
        )
        .0,
        200
    );
    assert_eq!(
        d.sql(ADMIN, "INSERT INTO app.t VALUES (1, 'acknowledged')")
            .0,
        200
    );
    d.kill9();

    // While it is down, leave what a crash leaves: a running job and a live query.
    {
        let storage = kalamdb_store::Storage::open(
            &tmp.path().join("data/rocksdb"),
            kalamdb_store::OpenMode::ReadWrite,
        )
        .expect("open");
        let sql = kalamdb_sql::KalamSql::new(storage);
        let job: kalamdb_sql::JobRecord = serde_json::from_value(json!({
            "job_id": "flush-dead", "job_type": "flush", "table_name": "app.t", "status": "running",
            "start_time": 1_700_000_000_000_i64, "node_id": "gone"}))
        .expect("job");
        sql.jobs().insert(&job).expect("insert job");
        let lq: kalamdb_sql::LiveQueryRecord = serde_json::from_value(json!({
            "live_id": "alice-c1-t-q1", "table_name": "app.t", "user_id": "alice"}))
        .expect("lq");
        sql.live_queries().insert(&lq).expect("insert lq");
    }

    let d2 = Daemon::start(tmp.path(), "");
    assert_eq!(
        d2.rows(ADMIN, "SELECT v FROM app.t WHERE id = 1"),
        vec![json!({"v": "acknowledged"})]
    );
    let job = d2.rows(
        ADMIN,
        "SELECT status, error_message FROM system.jobs WHERE job_id = 'flush-dead'",
    );
    assert_eq!(job[0]["status"], "failed", "{job:?}");
    assert!(
        job[0]["error_message"]
            .as_str()
            .is_some_and(|e| e.starts_with("abandoned")),
        "{job:?}"
    );
    assert!(
        d2.rows(ADMIN, "SELECT * FROM system.live_queries")
            .is_empty(),
        "stale live queries are purged"
    );
}

#[test]
fn background_flush_and_stream_eviction_follow_table_options() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(
        tmp.path(),
        "flush:\n  check_interval_seconds: 1\neviction:\n  interval_seconds: 1\n",
    );
    assert_eq!(d.sql(ADMIN, "CREATE NAMESPACE app; CREATE USER TABLE app.n (id INT PRIMARY KEY) WITH (FLUSH_POLICY = 'rows:5'); CREATE STREAM TABLE app.ev (i INT) WITH (MAX_BUFFER = 5)").0, 200);
    let values: Vec<String> = (0..10).map(|i| format!("({i})")).collect();
    assert_eq!(
        d.sql(
            ALICE,
            &format!("INSERT INTO app.n VALUES {}", values.join(", "))
        )
        .0,
        200
    );
    for i in 0..20 {
        assert_eq!(
            d.sql(ADMIN, &format!("INSERT INTO app.ev VALUES ({i})")).0,
            200
        );
        std::thread::sleep(Duration::from_millis(2)); // distinct millisecond keys
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let flushed = d.rows(
            ADMIN,
            "SELECT status FROM system.jobs WHERE job_type = 'flush'",
        );
        let evicted = d.rows(ADMIN, "SELECT count(*) AS n FROM app.ev")[0]["n"].as_u64();
        if !flushed.is_empty() && evicted == Some(5) {
            assert!(
                flushed.iter().all(|j| j["status"] == "completed"),
                "{flushed:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no policy flush or eviction: {flushed:?} {evicted:?}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let parquet = common_files(&tmp.path().join("data/storage/app/n/alice"));
    assert_eq!(parquet.len(), 1, "{parquet:?}");
    assert_eq!(
        d.rows(ALICE, "SELECT count(*) AS n FROM app.n"),
        vec![json!({"n": 10})],
        "flushed rows still read"
    );
    assert_eq!(
        d.rows(ADMIN, "SELECT min(i) AS lo FROM app.ev"),
        vec![json!({"lo": 15})],
        "the newest rows survive"
    );
    let ev = d.rows(
        ADMIN,
        "SELECT status FROM system.jobs WHERE job_type = 'stream_eviction'",
    );
    assert!(
        !ev.is_empty() && ev.iter().all(|j| j["status"] == "completed"),
        "{ev:?}"
    );
}

fn common_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|e| {
            e.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sighup_reloads_the_log_level() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "logging:\n  level: warn\n");
    assert!(
        !d.log_text().contains("INFO"),
        "info is filtered at warn: {}",
        d.log_text()
    );
    let config = tmp.path().join("kalamd.yaml");
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace("level: warn", "level: info");
    std::fs::write(&config, text).expect("write");
    d.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.log_text().contains("configuration reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.get("/ready", None).0, 200, "still serving after SIGHUP");
}

#[test]
fn embedded_defaults_create_the_directory_and_a_private_admin_token() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let data = tmp.path().join("fresh");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kalamd"))
        .env("KALAMD_DATA_DIR", &data)
        .env("KALAMD_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let token_file = data.join("admin.token");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !token_file.exists() {
        assert!(std::time::Instant::now() < deadline, "no admin.token");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mode = std::fs::metadata(&token_file)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    let token = std::fs::read_to_string(&token_file)
        .expect("token")
        .trim()
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = agent
        .post(format!("http://127.0.0.1:{port}/v1/api/sql"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(json!({"sql": "CREATE NAMESPACE fresh; SHOW NAMESPACES"}))
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 200);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    assert!(data.join("rocksdb/CURRENT").exists());
}

#[test]
fn a_drop_killed_mid_way_is_finished_by_kalamd_at_startup() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    for sql in [
        "CREATE NAMESPACE app",
        "CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)",
    ] {
        assert_eq!(d.sql(ADMIN, sql).0, 200, "{sql}");
    }
    for token in [ALICE, BOB] {
        assert_eq!(
            d.sql(token, "INSERT INTO app.t VALUES (1, 'x'), (2, 'y')")
                .0,
            200
        );
    }
    assert_eq!(d.sql(ADMIN, "FLUSH TABLE app.t").0, 200);
    let storage = tmp.path().join("data/storage");
    assert_eq!(parquet_files(&storage).len(), 2);
    drop(d);

    // The drop dies right after the column family goes, before any Parquet file does.
    let mut d = Daemon::start_with_env(
        tmp.path(),
        "",
        &[("FAILPOINTS", "table_deletion.hot_dropped=return")],
    );
    let (status, _) = d.sql(ADMIN, "DROP TABLE app.t");
    assert_eq!(status, 0, "the connection dies with the process");
    let exit = d.wait(Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&exit),
        Some(9)
    );
    assert_eq!(parquet_files(&storage).len(), 2, "files not yet deleted");

    // At startup kalamd finishes it before serving.
    let d = Daemon::start(tmp.path(), "");
    let jobs = d.rows(
        ADMIN,
        "SELECT status, step FROM system.jobs WHERE job_type = 'table_deletion'",
    );
    assert_eq!(
        jobs,
        vec![json!({"status": "completed", "step": "metadata_deleted"})]
    );
    assert!(
        parquet_files(&storage).is_empty(),
        "{:?}",
        parquet_files(&storage)
    );
    assert!(d.rows(ADMIN, "SHOW TABLES IN app").is_empty());
    assert_eq!(d.rows(ADMIN, "SHOW NAMESPACES")[0]["table_count"], json!(0));
    // The name is free again, and `kalamctl jobs list` reads next to the running daemon.
    assert_eq!(
        d.sql(ADMIN, "CREATE USER TABLE app.t (id BIGINT PRIMARY KEY)")
            .0,
        200
    );
    let out = std::process::Command::new(kalamctl_path())
        .args([
            "jobs",
            "list",
            "--type",
            "table_deletion",
            "--format",
            "json",
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .output()
        .expect("kalamctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed["jobs"][0]["status"], "completed");
}

/// Every `.parquet` file under `dir`.
fn parquet_files(dir: &std::path::Path) -> Vec<String> {
    kalamdb_fixtures::tree::files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect()
}

#[test]
fn kalamctl_verify_runs_next_to_a_running_kalamd_and_repair_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    assert_eq!(
        d.sql(
            ADMIN,
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, v TEXT); \
             INSERT INTO app.s VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.s; INSERT INTO app.s VALUES (3, 'c')"
        )
        .0,
        200
    );
    let data = tmp.path().join("data");
    let verify = |extra: &[&str]| {
        std::process::Command::new(kalamctl_path())
            .args(["verify", "--format", "json", "--data-dir"])
            .arg(&data)
            .args(extra)
            .output()
            .expect("kalamctl")
    };
    let out = verify(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["findings"], json!([]), "{report:#}");
    assert_eq!(report["summary"]["table_counts"]["app.s"]["hot_rows"], 1);
    assert_eq!(
        report["summary"]["table_counts"]["app.s"]["parquet_files"],
        1
    );

    let out = verify(&["--repair"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", d.pid())), "{stderr}");
    assert_eq!(d.get("/ready", None).0, 200, "kalamd is unaffected");
}
