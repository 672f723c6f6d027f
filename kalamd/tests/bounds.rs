//! Bounds on user-given durations and counts, and supervised background loops: no value evicts
//! what it should keep, and no loop dies silently.

mod common;
use std::time::{Duration, Instant};

use common::{ADMIN, Daemon, kalamd_command};
use serde_json::{Value, json};

/// A century in seconds: the largest TTL, interval or retention accepted.
const MAX_SECONDS: u64 = 3_155_760_000;

fn check_config(yaml: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("k.yaml");
    std::fs::write(&path, yaml).expect("write");
    let out = kalamd_command(&path)
        .arg("--check-config")
        .output()
        .expect("run kalamd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_bounds_refuse_every_out_of_range_value() {
    let max = u64::MAX.to_string();
    // (section, key, largest accepted, smallest accepted)
    for (section, key, top, low) in [
        ("retention", "completed_jobs_days", 36_525, 0),
        ("retention", "failed_jobs_days", 36_525, 0),
        ("retention", "check_interval_seconds", MAX_SECONDS, 1),
        ("flush", "check_interval_seconds", MAX_SECONDS, 1),
        ("eviction", "interval_seconds", MAX_SECONDS, 1),
        ("limits", "request_timeout_seconds", MAX_SECONDS, 1),
        ("limits", "max_body_bytes", 1 << 30, 1024),
        ("shutdown", "grace_seconds", 86_400, 1),
    ] {
        let at = |v: &str| check_config(&format!("{section}:\n  {key}: {v}\n"));
        for (value, why) in [
            (max.clone(), "u64::MAX"),
            ((top + 1).to_string(), "one past the bound"),
            ("-1".to_string(), "negative"),
        ] {
            let (code, stderr) = at(&value);
            assert_eq!(code, 2, "{section}.{key} = {value} ({why}): {stderr}");
            assert!(
                stderr.contains(&format!("{section}.{key}")),
                "{section}.{key} = {value}: the key is named: {stderr}"
            );
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        }
        if low > 0 {
            let (code, stderr) = at(&(low - 1).to_string());
            assert_eq!(code, 2, "{section}.{key} below {low}: {stderr}");
        }
        let (code, stderr) = if section == "shutdown" {
            check_config(&format!(
                "shutdown:\n  grace_seconds: {top}\n  drain_delay_seconds: 1\n"
            ))
        } else {
            at(&top.to_string())
        };
        assert_eq!(code, 0, "{section}.{key} = {top} is accepted: {stderr}");
    }
    // The same through the environment.
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("k.yaml");
    std::fs::write(&path, "").expect("write");
    let out = kalamd_command(&path)
        .arg("--check-config")
        .env("KALAMD_RETENTION_FAILED_JOBS_DAYS", &max)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention.failed_jobs_days"));
}

fn count(d: &Daemon, table: &str) -> u64 {
    d.rows(ADMIN, &format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_u64()
        .expect("count")
}

fn refused(d: &Daemon, sql: &str, needle: &str) {
    let (status, body) = d.sql(ADMIN, sql);
    assert_eq!(status, 400, "`{sql}` is refused: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "`{sql}`: {body}");
}

/// Polls until `done` holds, for at most `limit`.
fn until(d: &Daemon, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_largest_ttl_and_buffer_keep_every_row_while_eviction_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "eviction:\n  interval_seconds: 1\n");
    assert_eq!(d.sql(ADMIN, "CREATE NAMESPACE app").0, 200);
    let create =
        |name: &str, with: &str| format!("CREATE STREAM TABLE app.{name} (i INT) WITH ({with})");
    // The reported case: 18446744073709551 s is 1.8e19 ms, past i64::MAX. Before the bound,
    // the eviction cutoff wrapped into the future and every row was deleted.
    for (with, needle) in [
        (
            "TTL_SECONDS = '18446744073709551'".to_string(),
            "TTL_SECONDS",
        ),
        (format!("TTL_SECONDS = '{}'", u64::MAX), "TTL_SECONDS"),
        (
            "TTL_SECONDS = '18446744073709551616'".to_string(),
            "too large",
        ),
        (
            format!("TTL_SECONDS = '{}'", MAX_SECONDS + 1),
            "out of range",
        ),
        ("TTL_SECONDS = '-1'".to_string(), "negative"),
        ("TTL_SECONDS = '0'".to_string(), "out of range"),
        (format!("MAX_BUFFER = '{}'", u64::MAX), "MAX_BUFFER"),
        (
            format!("MAX_BUFFER = '{}'", i64::MAX as u64 + 1),
            "MAX_BUFFER",
        ),
        ("MAX_BUFFER = '-5'".to_string(), "negative"),
    ] {
        refused(&d, &create("bad", &with), needle);
    }
    for (with, needle) in [
        (
            format!("FLUSH_POLICY = 'interval:{}'", u64::MAX),
            "FLUSH_POLICY interval",
        ),
        (
            format!("FLUSH_POLICY = 'interval:{}'", MAX_SECONDS + 1),
            "out of range",
        ),
        (
            format!("FLUSH_POLICY = 'rows:{}'", u64::MAX),
            "FLUSH_POLICY rows",
        ),
        ("FLUSH_POLICY = 'rows:-1'".to_string(), "negative"),
        (
            "DELETED_RETENTION = '768614336404564651d'".to_string(),
            "DELETED_RETENTION",
        ),
        (
            format!("DELETED_RETENTION = '{}h'", u64::MAX),
            "DELETED_RETENTION",
        ),
        ("DELETED_RETENTION = '36526d'".to_string(), "out of range"),
        ("DELETED_RETENTION = '-1d'".to_string(), "DELETED_RETENTION"),
    ] {
        refused(
            &d,
            &format!("CREATE SHARED TABLE app.bad (id INT PRIMARY KEY) WITH ({with})"),
            needle,
        );
    }
    assert!(
        d.rows(
            ADMIN,
            "SELECT table_name FROM system.tables WHERE table_name = 'bad'"
        )
        .is_empty(),
        "no refused table exists"
    );
    // At the bounds: accepted, and stored as given.
    let ok = |sql: &str| assert_eq!(d.sql(ADMIN, sql).0, 200, "{sql}");
    ok(&create("forever", &format!("TTL_SECONDS = {MAX_SECONDS}")));
    ok(&create("huge", &format!("MAX_BUFFER = {}", i64::MAX)));
    ok(&create("short", "TTL_SECONDS = 1"));
    ok(&format!(
        "CREATE SHARED TABLE app.kept (id INT PRIMARY KEY) WITH (FLUSH_POLICY = 'rows:{},interval:{MAX_SECONDS}', DELETED_RETENTION = '36525d')",
        i64::MAX
    ));
    assert_eq!(
        d.rows(
            ADMIN,
            "SELECT ttl_seconds, max_buffer FROM system.tables WHERE table_name IN ('forever', 'huge') ORDER BY table_name"
        ),
        vec![
            json!({"ttl_seconds": MAX_SECONDS, "max_buffer": null}),
            json!({"ttl_seconds": null, "max_buffer": i64::MAX}),
        ]
    );
    for table in ["forever", "huge", "short"] {
        let values: Vec<String> = (0..50).map(|i| format!("({i})")).collect();
        ok(&format!(
            "INSERT INTO app.{table} VALUES {}",
            values.join(", ")
        ));
    }
    ok("INSERT INTO app.kept VALUES (1), (2), (3)");
    // Eviction really runs (the short TTL empties its table), and keeps everything else.
    until(
        &d,
        Duration::from_secs(20),
        "app.short was never evicted",
        || count(&d, "app.short") == 0,
    );
    // One more full eviction interval after it, for good measure.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(&d, "app.forever"),
        50,
        "the century TTL kept every row"
    );
    assert_eq!(
        count(&d, "app.huge"),
        50,
        "the largest buffer kept every row"
    );
    assert_eq!(count(&d, "app.kept"), 3);
    let evictions = d.rows(
        ADMIN,
        "SELECT table_name FROM system.jobs WHERE job_type = 'stream_eviction'",
    );
    assert!(
        !evictions.is_empty() && evictions.iter().all(|j| j["table_name"] == "app.short"),
        "only app.short was evicted: {evictions:?}"
    );
    // The evicted table was not left failing: /ready is plainly ready.
    assert_eq!(
        d.get("/ready", None),
        (200, r#"{"status":"ready"}"#.to_string())
    );
}

fn metric(d: &Daemon, name: &str, task: &str) -> Option<u64> {
    let (status, text) = d.get("/metrics", Some(ADMIN));
    assert_eq!(status, 200);
    let prefix = format!("{name}{{task=\"{task}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn ready(d: &Daemon) -> (u16, Value) {
    let (status, body) = d.get("/ready", None);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn a_failing_background_loop_is_counted_reported_and_restarted() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The eviction loop panics on its first two runs (a fail point), then works.
    let d = Daemon::start_with_env(
        tmp.path(),
        "eviction:\n  interval_seconds: 1\nflush:\n  check_interval_seconds: 1\n",
        &[(
            "FAILPOINTS",
            "kalamd.background.eviction=2*panic(injected eviction panic)",
        )],
    );
    assert_eq!(
        d.sql(
            ADMIN,
            "CREATE NAMESPACE app; CREATE STREAM TABLE app.s (i INT) WITH (TTL_SECONDS = 1)"
        )
        .0,
        200
    );
    assert_eq!(d.sql(ADMIN, "INSERT INTO app.s VALUES (1), (2)").0, 200);
    let mut degraded = Value::Null;
    until(
        &d,
        Duration::from_secs(20),
        "/ready never reported the panic",
        || {
            let (status, body) = ready(&d);
            assert_eq!(
                status, 200,
                "a failing loop does not take kalamd out of service"
            );
            let hit = body["status"] == "degraded";
            if hit {
                degraded = body;
            }
            hit
        },
    );
    let why = degraded["failing"]["eviction"].as_str().unwrap_or_default();
    assert!(why.contains("injected eviction panic"), "{degraded}");
    assert_eq!(metric(&d, "kalamdb_background_up", "eviction"), Some(0));
    // It was restarted: it runs again, succeeds, evicts, and /ready clears.
    until(
        &d,
        Duration::from_secs(30),
        "eviction never recovered",
        || count(&d, "app.s") == 0 && ready(&d).1["status"] == "ready",
    );
    assert_eq!(
        metric(&d, "kalamdb_background_failures_total", "eviction"),
        Some(2),
        "both panics are counted, and nothing else failed"
    );
    assert_eq!(metric(&d, "kalamdb_background_up", "eviction"), Some(1));
    assert_eq!(
        metric(&d, "kalamdb_background_failures_total", "flush"),
        Some(0)
    );
    let log = d.log_text();
    assert_eq!(
        log.matches("background task failed").count(),
        2,
        "each failure is logged once: {log}"
    );
    assert!(log.contains("injected eviction panic"), "{log}");
}

#[test]
fn a_flush_that_fails_for_real_keeps_its_rows_and_recovers() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The first flush check comes 3 s after startup: the rows are in and the path is broken
    // well before it.
    let d = Daemon::start(tmp.path(), "flush:\n  check_interval_seconds: 3\n");
    let blocker = tmp.path().join("cold");
    let storage = blocker.join("t");
    let (status, body) = d.sql(
        ADMIN,
        &format!(
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY) WITH (STORAGE = '{}', FLUSH_POLICY = 'rows:1')",
            storage.display()
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        d.sql(ADMIN, "INSERT INTO app.t VALUES (1), (2), (3)").0,
        200
    );
    // The table's storage now sits under a regular file: every flush fails with an I/O error
    // (and so do reads and inserts, which consult the cold tier).
    if blocker.exists() {
        std::fs::remove_dir_all(&blocker).expect("clear");
    }
    std::fs::write(&blocker, b"not a directory").expect("blocker");
    until(
        &d,
        Duration::from_secs(20),
        "the flush failure was never reported",
        || ready(&d).1["failing"]["flush"].is_string(),
    );
    assert!(metric(&d, "kalamdb_background_failures_total", "flush").unwrap_or(0) >= 1);
    assert_eq!(metric(&d, "kalamdb_background_up", "flush"), Some(0));
    // The operator fixes the path; the loop's next run succeeds and clears the report.
    std::fs::remove_file(&blocker).expect("unblock");
    until(
        &d,
        Duration::from_secs(30),
        "the flush never recovered",
        || ready(&d).1["status"] == "ready",
    );
    assert_eq!(metric(&d, "kalamdb_background_up", "flush"), Some(1));
    assert_eq!(
        count(&d, "app.t"),
        3,
        "the hot rows stayed: none lost or doubled"
    );
    let flushed = d.rows(
        ADMIN,
        "SELECT status FROM system.jobs WHERE job_type = 'flush' AND status = 'completed'",
    );
    assert!(!flushed.is_empty(), "a flush completed after the fix");
    assert!(
        storage.is_dir(),
        "the Parquet files landed where the table says"
    );
}

mod http_bodies {
    use proptest::prelude::*;
    use std::sync::OnceLock;

    use super::common::{ADMIN, ALICE, Daemon, agent};

    const SQL: &[&str] = &[
        "CREATE NAMESPACE IF NOT EXISTS app",
        "CREATE USER TABLE IF NOT EXISTS app.u (id BIGINT PRIMARY KEY, body TEXT)",
        "INSERT INTO app.u VALUES (1, 'one'); SELECT * FROM app.u",
        "SELECT count(*) FROM app.u WHERE id = 1",
        "CREATE STREAM TABLE app.e (k TEXT) WITH (TTL_SECONDS = 60)",
        "UPDATE app.u SET body = 'x' WHERE id = 1",
    ];

    /// One daemon for every case. A static is never dropped, so the daemon is killed and its
    /// directory removed when the test process exits (otherwise each run would leave both).
    fn daemon() -> &'static (Daemon, tempfile::TempDir) {
        static D: OnceLock<(Daemon, tempfile::TempDir)> = OnceLock::new();
        static PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
        static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
        extern "C" fn at_exit() {
            let pid = PID.load(std::sync::atomic::Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill(2) and waitpid(2) on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
            if let Some(dir) = DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        D.get_or_init(|| {
            let tmp = tempfile::tempdir().expect("tmp");
            let d = Daemon::start(tmp.path(), "limits:\n  max_body_bytes: 4096\n");
            PID.store(
                i32::try_from(d.pid()).expect("pid"),
                std::sync::atomic::Ordering::SeqCst,
            );
            let _ = DIR.set(tmp.path().to_path_buf());
            // SAFETY: registers a plain function with no captured state.
            unsafe {
                libc::atexit(at_exit);
            }
            (d, tmp)
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "\\PC{0,200}".prop_map(String::into_bytes),
            (
                prop::sample::select(SQL),
                any::<prop::sample::Index>(),
                "\\PC{0,8}"
            )
                .prop_map(|(sql, at, splice)| {
                    let chars: Vec<char> = sql.chars().collect();
                    let at = at.index(chars.len() + 1);
                    let mut s: String = chars[..at].iter().collect();
                    s.push_str(&splice);
                    s.extend(&chars[at..]);
                    serde_json::to_vec(&serde_json::json!({ "sql": s })).unwrap_or_default()
                }),
            prop::sample::select(
                &[
                    r#"{"sql": 5}"#,
                    r#"{"sql": null}"#,
                    r#"[]"#,
                    r#"{"sql": "SELECT 1", "x": 1}"#,
                    r#"{"sql": ["SELECT 1"]}"#,
                    r#""SELECT 1""#,
                    "{",
                    "",
                ][..]
            )
            .prop_map(|s| s.as_bytes().to_vec()),
            Just(vec![b'['; 5000]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any body: a JSON answer, with a one-line error when it is refused; the server stays up.
        #[test]
        fn any_body_gets_a_json_answer(bytes in body(), admin in any::<bool>()) {
            let (d, _) = daemon();
            let token = if admin { ADMIN } else { ALICE };
            let response = agent()
                .post(d.url("/v1/api/sql"))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(&bytes[..]);
            let mut response = response.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{status}: not JSON ({e}): {text}")))?;
            if status == 200 {
                prop_assert_eq!(&json["status"], "success");
            } else {
                prop_assert!((400..600).contains(&status));
                let message = json["error"]["message"].as_str().unwrap_or_default();
                prop_assert!(!message.is_empty(), "{}", text);
                prop_assert!(!message.contains('\n'), "{}", text);
                prop_assert!(json["error"]["code"].is_string(), "{}", text);
            }
            prop_assert_eq!(d.get("/health", None).0, 200, "kalamd is still up");
        }
    }
}
