//! `kalamctl backup` with an S3 repository (`--to s3://bucket/prefix --credentials PROFILE
//! --config FILE`), against a real S3-compatible server on loopback (moto's): the same
//! content-addressed layout, incremental reuse, verify that finds a changed object, restore
//! into a new directory that verifies clean, prune, a lock held elsewhere, and interruptions
//! (SIGINT mid-upload, kill -9) that never leave a backup listed as complete or an upload
//! open.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Db, Run, kalamctl, kalamctl_env};
use kalamdb_fixtures::s3::S3Server;
use serde_json::Value;

const REPO: &str = "s3://backups/kdb";

struct Setup {
    tmp: tempfile::TempDir,
    db: Db,
    s3: S3Server,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let s3 = S3Server::start();
        s3.create_bucket("backups");
        let tmp = tempfile::tempdir().expect("tmp");
        let config = tmp.path().join("kalamd.yaml");
        std::fs::write(
            &config,
            format!(
                "storage:\n  credentials:\n    bk:\n      access_key_id: test\n      secret_access_key: test\n      endpoint: {}\n      allow_http: true\n",
                s3.endpoint()
            ),
        )
        .expect("config");
        let db = Db::new();
        db.ok("CREATE NAMESPACE app");
        db.ok("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
        db.ok("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT)");
        db.ok_as(
            Some("alice"),
            "INSERT INTO app.notes VALUES (1, 'a'), (2, 'b')",
        );
        db.ok("INSERT INTO app.cfg VALUES ('theme', 'dark')");
        db.ok("FLUSH TABLE app.notes");
        db.ok_as(Some("alice"), "INSERT INTO app.notes VALUES (3, 'c')");
        Setup {
            tmp,
            db,
            s3,
            config,
        }
    }

    /// `kalamctl backup ARGS --config F --credentials bk --format json`.
    fn backup(&self, args: &[&str]) -> Run {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        all.extend([
            "--config",
            self.config.to_str().expect("utf8"),
            "--credentials",
            "bk",
            "--format",
            "json",
        ]);
        kalamctl(&all)
    }

    fn create(&self) -> Value {
        let r = self.backup(&["create", "--data-dir", self.db.path(), "--to", REPO]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()
    }

    fn listed(&self) -> Vec<(u64, String)> {
        let r = self.backup(&["list", REPO]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| {
                (
                    b["id"].as_u64().unwrap_or(0),
                    b["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

#[test]
fn an_s3_repository_takes_backups_that_list_verify_restore_and_prune() {
    let t = Setup::new();
    let first = t.create();
    assert!(first["new_files"].as_u64().unwrap_or(0) > 0, "{first}");
    assert_eq!(first["repository"], REPO);
    let keys = t.s3.keys("backups", "kdb/");
    assert!(
        keys.contains(&"kdb/kalamdb-backup.json".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"kdb/backups/1.json".to_string()), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("kdb/objects/")),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("/locks/") || k.ends_with(".partial")),
        "the lock and the partial marker are gone: {keys:?}"
    );

    // Incremental: a second backup reuses what the bucket holds.
    t.db.ok_as(Some("alice"), "INSERT INTO app.notes VALUES (4, 'd')");
    let second = t.create();
    assert!(
        second["new_files"].as_u64() < second["files"].as_u64(),
        "{second}"
    );
    assert_eq!(
        t.listed(),
        vec![(1, "complete".into()), (2, "complete".into())]
    );
    let verified = t.backup(&["verify", REPO]);
    assert_eq!(verified.code, 0, "{}", verified.stdout);

    // Restore into a new directory: verified, the rows all there.
    let restored = t.tmp.path().join("restored");
    let r = t.backup(&["restore", REPO, "--id", "2", "--to", s(&restored)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = kalamctl(&["verify", "--data-dir", s(&restored), "--format", "json"]);
    assert_eq!(v.code, 0, "{}", v.stdout);
    let rows = kalamctl(&[
        "sql",
        "--data-dir",
        s(&restored),
        "--user",
        "alice",
        "--format",
        "json",
        "SELECT count(*) AS n FROM app.notes",
    ]);
    assert_eq!(rows.code, 0, "{}", rows.stderr);
    assert_eq!(rows.json()["results"][0]["rows"][0]["n"], 4);

    // Prune keeps the newest; the repository still verifies.
    let pruned = t.backup(&["prune", REPO, "--keep", "1"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    assert_eq!(pruned.json()["deleted"], serde_json::json!([1]));
    assert_eq!(t.listed(), vec![(2, "complete".into())]);
    assert_eq!(t.backup(&["verify", REPO]).code, 0);

    // A changed object is found and named.
    let object =
        t.s3.keys("backups", "kdb/objects/")
            .into_iter()
            .next()
            .expect("an object");
    t.s3.put("backups", &object, b"not what was backed up");
    let bad = t.backup(&["verify", REPO]);
    assert_eq!(bad.code, 3, "{}", bad.stdout);
    let problems = bad.json()["problems"].to_string();
    assert!(problems.contains(&object), "{problems}");

    // A writer lock held on another host refuses a second writer, naming it and the fix.
    t.s3.put(
        "backups",
        "kdb/locks/writer",
        br#"{"pid": 1, "host": "elsewhere", "since": 0}"#,
    );
    let locked = t.backup(&["create", "--data-dir", t.db.path(), "--to", REPO]);
    assert_eq!(locked.code, 4, "{}", locked.stderr);
    assert!(
        locked.stderr.contains("elsewhere")
            && locked
                .stderr
                .contains("kalamctl backup unlock s3://backups/kdb --remove-all"),
        "{}",
        locked.stderr
    );
    assert_eq!(
        locked.stderr.trim_end().lines().count(),
        1,
        "{}",
        locked.stderr
    );
    unlock_removes_what_crashed_writers_left(&t);
}

/// `backup unlock`: a lock of a process of this host that no longer runs goes; one held on
/// another host stays (exit 4, named) until --remove-all; then writers may run again.
fn unlock_removes_what_crashed_writers_left(t: &Setup) {
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let here = kalamdb_core::process::hostname();
    t.s3.put(
        "backups",
        "kdb/locks/exclusive",
        format!(r#"{{"pid": {dead_pid}, "host": "{here}", "since": 0}}"#).as_bytes(),
    );

    let first = t.backup(&["unlock", REPO]);
    assert_eq!(first.code, 4, "a lock is kept: {}", first.stdout);
    let locks = first.json()["locks"].clone();
    let by_name = |name: &str| {
        locks
            .as_array()
            .expect("locks")
            .iter()
            .find(|l| l["lock"].as_str().is_some_and(|p| p.ends_with(name)))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not reported: {locks}"))
    };
    assert_eq!(by_name("locks/exclusive")["removed"], true, "{locks}");
    assert_eq!(by_name("locks/writer")["removed"], false, "{locks}");
    assert_eq!(by_name("locks/writer")["holder"], "pid 1 on elsewhere");
    assert_eq!(
        t.s3.keys("backups", "kdb/locks/"),
        vec!["kdb/locks/writer".to_string()],
        "only the stale lock went"
    );

    // Human output: the table on stdout, one line on stderr saying what to do.
    let human = kalamctl(&[
        "backup",
        "unlock",
        REPO,
        "--config",
        s(&t.config),
        "--credentials",
        "bk",
    ]);
    assert_eq!(human.code, 4, "{}", human.stderr);
    assert!(human.stdout.contains("kept") && human.stdout.contains("elsewhere"));
    assert_eq!(
        human.stderr.trim_end().lines().count(),
        1,
        "{}",
        human.stderr
    );
    assert!(human.stderr.contains("--remove-all"), "{}", human.stderr);
    let still = t.backup(&["create", "--data-dir", t.db.path(), "--to", REPO]);
    assert_eq!(still.code, 4, "{}", still.stderr);

    let all = t.backup(&["unlock", REPO, "--remove-all"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.json()["locks"][0]["removed"], true);
    assert!(t.s3.keys("backups", "kdb/locks/").is_empty());
    let again = t.backup(&["create", "--data-dir", t.db.path(), "--to", REPO]);
    assert_eq!(again.code, 0, "writers run again: {}", again.stderr);
    let nothing = t.backup(&["unlock", REPO]);
    assert_eq!(nothing.code, 0, "{}", nothing.stderr);
    assert_eq!(nothing.json()["locks"], serde_json::json!([]));

    // A directory repository's locks end with their process: nothing to remove.
    let dir = t.tmp.path().join("dir-repo");
    let made = kalamctl(&[
        "backup",
        "create",
        "--data-dir",
        t.db.path(),
        "--to",
        s(&dir),
        "--format",
        "json",
    ]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let local = kalamctl(&["backup", "unlock", s(&dir), "--format", "json"]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    assert_eq!(local.json()["locks"], serde_json::json!([]));
}

#[test]
fn bad_s3_repository_arguments_get_one_line_and_exit_2() {
    let t = Setup::new();
    for (args, needle) in [
        (vec!["list", "s3://x"], "not a bucket name"),
        (vec!["list", "ftp://b/p"], "not a directory or an s3://"),
    ] {
        let r = t.backup(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    }
    let r = kalamctl(&["backup", "list", s(t.tmp.path()), "--credentials", "bk"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("for s3:// repositories"), "{}", r.stderr);
    let r = kalamctl(&["backup", "list", REPO, "--credentials", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("storage.credentials.nope"),
        "{}",
        r.stderr
    );
    assert!(t.s3.keys("backups", "").is_empty(), "nothing was written");
}

#[test]
fn credentials_the_server_refuses_get_one_line_and_exit_2_and_change_nothing() {
    let (s3, id, secret) = S3Server::start_checking_credentials(&["backups"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("kalamd.yaml");
    let profile = |name: &str, id: &str, secret: &str| {
        format!(
            "    {name}:\n      access_key_id: {id}\n      secret_access_key: {secret}\n      endpoint: {}\n      allow_http: true\n",
            s3.endpoint()
        )
    };
    std::fs::write(
        &config,
        format!(
            "storage:\n  credentials:\n{}{}{}",
            profile("right", &id, &secret),
            profile("bad-secret", &id, "not-the-secret"),
            profile("bad-key", "AKIANOSUCHKEY", &secret),
        ),
    )
    .expect("config");
    let db = Db::new();
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT)");
    db.ok("INSERT INTO app.cfg VALUES ('theme', 'dark')");
    let before = kalamdb_fixtures::tree::snapshot(Path::new(db.path()));
    let run = |verb: &[&str], profile: &str| {
        let mut args = vec!["backup"];
        args.extend_from_slice(verb);
        args.extend(["--config", s(&config), "--credentials", profile]);
        kalamctl(&args)
    };
    let create = ["create", "--data-dir", db.path(), "--to", REPO];
    // The first request is a HEAD, whose refusal has no body: the status is all S3 gives.
    for profile in ["bad-secret", "bad-key"] {
        for verb in [&create[..], &["list", REPO][..]] {
            let r = run(verb, profile);
            assert_eq!(r.code, 2, "{verb:?} {profile}: {}", r.stderr);
            for needle in [
                format!("the server refused the credentials of profile '{profile}' ("),
                "HTTP 403); check access_key_id and secret_access_key".to_string(),
                format!("of storage.credentials.{profile} in the config file"),
            ] {
                assert!(r.stderr.contains(&needle), "{needle}: {}", r.stderr);
            }
            assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
            assert!(!r.stderr.contains(&secret), "{}", r.stderr);
        }
    }
    assert_eq!(
        kalamdb_fixtures::tree::snapshot(Path::new(db.path())),
        before,
        "the data directory is unchanged, to the byte"
    );
    // The same server takes the backup with the right key pair.
    let r = run(&create, "right");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&["list", REPO, "--format", "json"], "right");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["backups"][0]["status"], "complete", "{}", r.stdout);
}

/// Text that compresses little: 6 bits of noise per character.
fn noise(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    // splitmix64
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            char::from(ALPHABET[(z >> 58) as usize])
        })
        .collect()
}

#[test]
fn an_interrupted_backup_to_s3_is_never_listed_complete_and_leaves_no_upload_open() {
    let t = Setup::new();
    // A Parquet file past one 8 MiB part, so that its upload is a multipart one.
    let mut sql = String::new();
    for chunk in 0..60 {
        let rows: Vec<String> = (0..500)
            .map(|i| format!("('k{chunk}-{i}', '{}')", noise(chunk * 1000 + i, 500)))
            .collect();
        sql.push_str(&format!("INSERT INTO app.cfg VALUES {};", rows.join(", ")));
    }
    sql.push_str("FLUSH TABLE app.cfg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args(["sql", "--data-dir", t.db.path(), "-"])
        .env_remove("KALAMDB_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        std::io::Write::write_all(&mut input, sql.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for signal in [libc::SIGINT, libc::SIGKILL] {
        // The upload pauses once its first part is up; the signal lands then.
        let mut child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
            .args([
                "backup",
                "create",
                "--data-dir",
                t.db.path(),
                "--to",
                REPO,
                "--config",
                s(&t.config),
                "--credentials",
                "bk",
                "--rehash",
            ])
            .env("FAILPOINTS", "backup.uploading=sleep(3000)")
            .env_remove("KALAMDB_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(120);
        while t.s3.pending_uploads("backups") == 0 {
            assert!(
                Instant::now() < deadline,
                "no multipart upload was seen in progress"
            );
            if child.try_wait().expect("wait").is_some() {
                let out = child.wait_with_output().expect("output");
                panic!(
                    "kalamctl ended before its upload was seen: {:?} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on our own child with a valid signal number.
        unsafe {
            libc::kill(i32::try_from(child.id()).expect("pid"), signal);
        }
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            t.listed().iter().all(|(_, status)| status != "complete"),
            "signal {signal}: {:?}",
            t.listed()
        );
        if signal == libc::SIGINT {
            assert_eq!(out.status.code(), Some(5), "{stderr}");
            assert_eq!(
                t.s3.pending_uploads("backups"),
                0,
                "the interrupted upload was aborted"
            );
            assert!(t.listed().is_empty(), "no partial marker: {:?}", t.listed());
            assert!(t.s3.keys("backups", "kdb/locks/").is_empty());
            assert!(
                t.s3.keys("backups", "kdb/tmp/").is_empty(),
                "no upload on record"
            );
        } else {
            // Killed: the partial marker and the lock stay, the backup never lists complete,
            // and the upload it had open stays open, on record for the next writer.
            assert_eq!(out.status.code(), None);
            assert!(
                t.listed().iter().any(|(_, status)| status == "incomplete"),
                "{:?}",
                t.listed()
            );
            assert_eq!(t.s3.pending_uploads("backups"), 1, "the kill left it open");
            assert_eq!(t.s3.keys("backups", "kdb/tmp/uploads/").len(), 1);
        }
    }
    // The next run takes over the lock the killed one left (this host, pid gone), aborts the
    // upload it left open, cleans up and completes.
    let done = t.create();
    assert_eq!(
        t.s3.pending_uploads("backups"),
        0,
        "the killed run's upload was aborted"
    );
    assert!(t.s3.keys("backups", "kdb/tmp/").is_empty());
    assert_eq!(
        t.listed()
            .iter()
            .map(|(_, status)| status.as_str())
            .collect::<Vec<_>>(),
        vec!["complete"]
    );
    assert!(done["new_bytes"].as_u64().unwrap_or(0) > 8 << 20, "{done}");
    let v = t.backup(&["verify", REPO]);
    assert_eq!(v.code, 0, "{}", v.stdout);
}

/// The S3 server stops answering (SIGSTOP) while a backup's multipart upload is in progress:
/// the backup fails after its request timeouts, one line, and once the server answers again
/// nothing is listed complete; the next backup succeeds.
#[test]
fn a_server_that_stops_answering_mid_backup_leaves_no_complete_looking_backup() {
    let t = Setup::new();
    // Requests time out after 1 s (then two retries) instead of 30.
    std::fs::write(
        &t.config,
        format!(
            "storage:\n  credentials:\n    bk:\n      access_key_id: test\n      secret_access_key: test\n      endpoint: {}\n      allow_http: true\n      timeout_seconds: 1\n",
            t.s3.endpoint()
        ),
    )
    .expect("config");
    let mut sql = String::new();
    for chunk in 0..60 {
        let rows: Vec<String> = (0..500)
            .map(|i| format!("('k{chunk}-{i}', '{}')", noise(chunk * 1000 + i, 500)))
            .collect();
        sql.push_str(&format!("INSERT INTO app.cfg VALUES {};", rows.join(", ")));
    }
    sql.push_str("FLUSH TABLE app.cfg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args(["sql", "--data-dir", t.db.path(), "-"])
        .env_remove("KALAMDB_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        std::io::Write::write_all(&mut input, sql.as_bytes()).expect("stdin");
    }
    assert!(child.wait_with_output().expect("wait").status.success());

    let child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args([
            "backup",
            "create",
            "--data-dir",
            t.db.path(),
            "--to",
            REPO,
            "--config",
            s(&t.config),
            "--credentials",
            "bk",
        ])
        .env("FAILPOINTS", "backup.uploading=sleep(1500)")
        .env_remove("KALAMDB_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while t.s3.pending_uploads("backups") == 0 {
        assert!(Instant::now() < deadline, "no upload was seen in progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.s3.pause();
    let out = child.wait_with_output().expect("wait");
    t.s3.resume();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("object storage"), "{stderr}");
    assert!(
        t.listed().iter().all(|(_, status)| status != "complete"),
        "{:?}",
        t.listed()
    );
    let done = t.create();
    assert_eq!(
        done["backup_id"].as_u64(),
        t.listed().last().map(|(id, _)| *id)
    );
    assert_eq!(t.backup(&["verify", REPO]).code, 0);
}

/// A table's cold objects in another bucket of the same server (reached with the same
/// profile) go into an S3 repository by S3's CopyObject across buckets, never through this
/// process, on a server that checks every request's signature; the backup restores into a
/// directory that verifies clean and reads every row back.
#[test]
fn cold_objects_in_another_bucket_of_the_same_server_are_copied_server_side() {
    let (s3, id, secret) = S3Server::start_checking_credentials(&["lake", "backups"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("kalamd.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  credentials:\n    right:\n      access_key_id: {id}\n      secret_access_key: {secret}\n      endpoint: {}\n      allow_http: true\n",
            s3.endpoint()
        ),
    )
    .expect("config");
    let db = Db::new();
    let with_config = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", s(&config), "--format", "json"]);
        let r = kalamctl(&all);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.json()
    };
    let sql = |q: &str| with_config(&["sql", "--data-dir", db.path(), q]);
    sql("CREATE STORAGE lake TYPE s3 PATH 's3://lake/cold' CREDENTIALS 'right'");
    sql("CREATE NAMESPACE app");
    sql("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT) WITH (STORAGE = 'lake')");
    sql("INSERT INTO app.cfg VALUES ('theme', 'dark'), ('lang', 'en')");
    sql("FLUSH TABLE app.cfg");
    sql("INSERT INTO app.cfg VALUES ('tz', 'utc')");

    let create = [
        "backup",
        "create",
        "--data-dir",
        db.path(),
        "--to",
        REPO,
        "--credentials",
        "right",
        "--config",
        s(&config),
        "--format",
        "json",
    ];
    // A server that keeps answering SlowDown: the copy is tried three times, then the backup
    // fails with one line naming the refusal, and nothing lists as a backup.
    let refused = kalamctl_env(&create, &[("FAILPOINTS", "object.copy_slow_down=3*return")]);
    assert_eq!(refused.code, 5, "{}{}", refused.stdout, refused.stderr);
    let line = refused.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("SlowDown") && line.contains("HTTP 503") && line.contains("s3://lake/"),
        "{line}"
    );
    let listed = with_config(&["backup", "list", REPO, "--credentials", "right"]);
    assert_eq!(listed["backups"], serde_json::json!([]), "{listed}");
    // A server that stopped listening: each attempt's connection is refused (a real
    // connection, to a port nothing listens on), three times, then the backup fails the same
    // way: one line naming the connection and the object, nothing listed.
    let lost = kalamctl_env(
        &create,
        &[("FAILPOINTS", "object.copy_connection_refused=3*return")],
    );
    assert_eq!(lost.code, 5, "{}{}", lost.stdout, lost.stderr);
    let line = lost.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("onnect") && line.contains("s3://lake/"),
        "{line}"
    );
    let listed = with_config(&["backup", "list", REPO, "--credentials", "right"]);
    assert_eq!(listed["backups"], serde_json::json!([]), "{listed}");
    // Refused once, its connection refused once, then accepted: the retries carry the copy
    // through whichever way an attempt failed.
    let created = kalamctl_env(
        &create,
        &[(
            "FAILPOINTS",
            "object.copy_slow_down=1*return;object.copy_connection_refused=1*return",
        )],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let created = created.json();
    assert_eq!(created["server_side_copies"], 1, "{created}");
    let verified = with_config(&["backup", "verify", REPO, "--credentials", "right"]);
    assert_eq!(verified["problems"], serde_json::json!([]), "{verified}");

    let restored = tmp.path().join("restored");
    with_config(&[
        "backup",
        "restore",
        REPO,
        "--to",
        s(&restored),
        "--credentials",
        "right",
    ]);
    let r = kalamctl(&["verify", "--data-dir", s(&restored), "--format", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = with_config(&[
        "sql",
        "--data-dir",
        s(&restored),
        "SELECT k, v FROM app.cfg ORDER BY k",
    ]);
    assert_eq!(
        rows["results"][0]["rows"],
        serde_json::json!([
            {"k": "lang", "v": "en"},
            {"k": "theme", "v": "dark"},
            {"k": "tz", "v": "utc"},
        ]),
        "{rows}"
    );
}
