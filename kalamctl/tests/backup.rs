//! `kalamctl backup`: create, list, verify, restore and prune, through the binary, on real
//! RocksDB and Parquet files. The online backup (against kalamd) is in kalamd/tests/backup.rs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Db, Run, files_under, kalamctl, kalamctl_env, kalamctl_killed_after};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn run(args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    kalamctl(&all)
}

fn ok(args: &[&str]) -> Value {
    let r = run(args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.json()
}

/// A [`populated`] database with one backup, in a repository next to it.
fn backed_up() -> (tempfile::TempDir, Db, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = populated(&tmp.path().join("cold"));
    let repo = tmp.path().join("repo");
    create(&db, &repo);
    (tmp, db, repo)
}

/// The arguments of `backup create` of `db` into `repo`, then `extra`.
fn create_args<'a>(db: &'a Db, repo: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["backup", "create", "--data-dir", db.path(), "--to", s(repo)];
    args.extend_from_slice(extra);
    args
}

/// `backup create` of `db` into `repo`; expects exit 0.
fn create(db: &Db, repo: &Path) -> Value {
    ok(&create_args(db, repo, &[]))
}

/// `backup create` that kills itself (-9) at fail point `point`.
fn create_killed_at(db: &Db, repo: &Path, point: &str) -> Run {
    let kill = format!("{point}=return");
    kalamctl_env(&create_args(db, repo, &[]), &[("FAILPOINTS", &kill)])
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// A database with every kind of table and row a backup must carry: user rows of two users,
/// shared rows, stream rows, flushed (Parquet) and unflushed (RocksDB) rows, soft-deleted
/// rows, and a table whose Parquet files live outside the data directory.
fn populated(external: &Path) -> Db {
    let db = Db::new();
    db.ok(&format!(
        "CREATE NAMESPACE app; \
         CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT); \
         CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT); \
         CREATE STREAM TABLE app.events (id BIGINT PRIMARY KEY, kind TEXT) WITH (TTL_SECONDS = 86400); \
         CREATE USER TABLE app.ext (id BIGINT PRIMARY KEY, n BIGINT) WITH (STORAGE = '{}/${{user_id}}/ext')",
        external.display()
    ));
    for user in ["alice", "bob"] {
        db.ok_as(
            Some(user),
            &format!("INSERT INTO app.notes VALUES (1, '{user} one'), (2, '{user} two'), (3, '{user} three')"),
        );
        db.ok_as(Some(user), "INSERT INTO app.ext VALUES (1, 10), (2, 20)");
    }
    db.ok("INSERT INTO app.cfg VALUES ('a', '1'), ('b', '2'), ('c', '3')");
    db.ok("FLUSH TABLE app.notes; FLUSH TABLE app.cfg; FLUSH TABLE app.ext");
    db.ok_as(Some("alice"), "INSERT INTO app.notes VALUES (4, 'hot')");
    db.ok_as(Some("alice"), "DELETE FROM app.notes WHERE id = 2");
    db.ok("INSERT INTO app.cfg VALUES ('d', '4'); UPDATE app.cfg SET v = 'x' WHERE k = 'a'; DELETE FROM app.cfg WHERE k = 'b'");
    db.ok("INSERT INTO app.events VALUES (1, 'click'), (2, 'view')");
    db
}

/// Every table's rows as each reader sees them, hashed: `table/user` → SHA-256 of the rows.
fn content(dir: &Path) -> BTreeMap<String, String> {
    let queries = [
        ("app.cfg", None, "SELECT * FROM app.cfg ORDER BY k"),
        ("app.events", None, "SELECT * FROM app.events ORDER BY id"),
        (
            "app.notes/alice",
            Some("alice"),
            "SELECT * FROM app.notes ORDER BY id",
        ),
        (
            "app.notes/bob",
            Some("bob"),
            "SELECT * FROM app.notes ORDER BY id",
        ),
        (
            "app.ext/alice",
            Some("alice"),
            "SELECT * FROM app.ext ORDER BY id",
        ),
        (
            "app.ext/bob",
            Some("bob"),
            "SELECT * FROM app.ext ORDER BY id",
        ),
    ];
    let mut out = BTreeMap::new();
    for (name, user, sql) in queries {
        let mut args = vec!["sql", "--data-dir", s(dir), "--format", "json"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.push(sql);
        let r = kalamctl(&args);
        assert_eq!(r.code, 0, "{sql} on {}: {}", dir.display(), r.stderr);
        let rows = r.json()["results"][0]["rows"].clone();
        assert!(
            rows.as_array().is_some_and(|r| !r.is_empty()),
            "{name} is empty"
        );
        let digest = Sha256::digest(rows.to_string().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        out.insert(name.to_string(), hex);
    }
    out
}

/// A column family's keys and values, in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every key and value of every data column family (soft-deleted rows included).
fn raw_rows(dir: &Path) -> BTreeMap<String, Rows> {
    let storage =
        kalamdb_store::Storage::open(&dir.join("rocksdb"), kalamdb_store::OpenMode::ReadOnly)
            .expect("open");
    let mut out = BTreeMap::new();
    for cf in storage.column_families().expect("cfs") {
        if !cf.contains("_table:") {
            continue;
        }
        let mut rows = Vec::new();
        storage
            .scan_prefix(&cf, b"", |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .expect("scan");
        out.insert(cf, rows);
    }
    out
}

/// Runs a long SQL text through standard input (too long for one argument).
fn bulk(db: &Db, sql: &str) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamctl"))
        .args(["sql", "--data-dir", db.path(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success(), "bulk SQL failed");
}

fn jobs(dir: &Path) -> Vec<Value> {
    let r = run(&["jobs", "list", "--data-dir", s(dir)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()["jobs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn backup_then_restore_gives_equal_rows_in_every_table() {
    let tmp = tempfile::tempdir().expect("tmp");
    let external = tmp.path().join("cold");
    let db = populated(&external);
    let repo = tmp.path().join("repo");
    let created = create(&db, &repo);
    assert_eq!(created["backup_id"], 1);
    assert!(created["files"].as_u64().unwrap_or(0) > 5, "{created}");
    assert_eq!(created["tables"], 4);

    // The source records the backup as a completed job.
    let source_jobs = jobs(&db.dir);
    let job = source_jobs
        .iter()
        .find(|j| j["job_type"] == "backup")
        .expect("backup job");
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["job_id"], created["job_id"]);

    let target = tmp.path().join("restored");
    let restored = ok(&["backup", "restore", s(&repo), "--to", s(&target)]);
    assert_eq!(restored["backup_id"], 1);
    // The table outside the data directory now points inside the restored one.
    let relocated = restored["relocated"].to_string();
    assert!(relocated.contains("app.ext"), "{relocated}");
    assert!(
        files_under(&target.join("external"))
            .iter()
            .any(|f| f.ends_with(".parquet")),
        "external Parquet files restored under external/"
    );

    assert_eq!(content(&db.dir), content(&target));
    assert_eq!(
        raw_rows(&db.dir),
        raw_rows(&target),
        "soft-deleted and hot rows too"
    );
    // Parquet files are byte-identical.
    let parquet = |root: &Path| -> BTreeMap<String, Vec<u8>> {
        files_under(root)
            .into_iter()
            .filter(|f| f.ends_with(".parquet"))
            .map(|f| {
                let bytes = std::fs::read(root.join(&f)).expect("read");
                (f, bytes)
            })
            .collect()
    };
    assert_eq!(parquet(&db.storage()), parquet(&target.join("storage")));

    // The restored database reports the restore, and the backup as completed.
    let restored_jobs = jobs(&target);
    let by_type = |t: &str| restored_jobs.iter().find(|j| j["job_type"] == t).cloned();
    assert_eq!(
        by_type("restore").expect("restore job")["status"],
        "completed"
    );
    assert_eq!(
        by_type("backup").expect("backup job")["status"],
        "completed"
    );
    // It is a working database: writes go to the restored copy, not the source.
    kalamctl(&[
        "sql",
        "--data-dir",
        s(&target),
        "--user",
        "alice",
        "INSERT INTO app.ext VALUES (3, 30)",
    ]);
    kalamctl(&["sql", "--data-dir", s(&target), "FLUSH TABLE app.ext"]);
    assert_eq!(
        files_under(&external).len(),
        2,
        "the source's external location is untouched: {:?}",
        files_under(&external)
    );
    let v = run(&["verify", "--data-dir", s(&target)]);
    assert_eq!(v.code, 0, "verify on the restored copy: {}", v.stdout);

    // Restore never writes into a non-empty directory, and changes nothing when it refuses.
    let r = kalamctl(&["backup", "restore", s(&repo), "--to", s(&target)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1);
}

#[test]
fn a_flipped_byte_in_any_backup_file_is_found_and_named() {
    let (tmp, _db, repo) = backed_up();
    assert_eq!(
        ok(&["backup", "verify", s(&repo)])["problems"],
        Value::Array(vec![])
    );

    let files: Vec<String> = files_under(&repo)
        .into_iter()
        .filter(|f| f.starts_with("objects/") || f.starts_with("backups/"))
        .filter(|f| std::fs::metadata(repo.join(f)).is_ok_and(|m| m.len() > 0))
        .collect();
    assert!(files.len() > 5, "{files:?}");
    for f in &files {
        let path = repo.join(f);
        let original = std::fs::read(&path).expect("read");
        let mut flipped = original.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        make_writable(&path);
        std::fs::write(&path, &flipped).expect("write");

        let r = run(&["backup", "verify", s(&repo)]);
        assert_eq!(r.code, 3, "{f}: verify must fail: {}", r.stdout);
        let report = r.json();
        let named = report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| {
                p["object"]
                    .as_str()
                    .is_some_and(|o| o.ends_with(f.as_str()))
                    || p["path"].as_str().is_some_and(|o| o.ends_with(f.as_str()))
            });
        assert!(named, "{f} not named: {report}");
        std::fs::write(&path, &original).expect("restore");
    }
    assert_eq!(
        ok(&["backup", "verify", s(&repo), "--deep"])["deep"]["passed"],
        true
    );

    // A restore of a damaged backup fails with the counts, and leaves nothing.
    let mut objects = files.iter().filter(|f| f.starts_with("objects/"));
    let (gone, flipped) = (
        objects.next().expect("an object"),
        objects.next().expect("two objects"),
    );
    make_writable(&repo.join(gone));
    std::fs::remove_file(repo.join(gone)).expect("remove");
    make_writable(&repo.join(flipped));
    let mut bytes = std::fs::read(repo.join(flipped)).expect("read");
    bytes[0] ^= 0x20;
    std::fs::write(repo.join(flipped), &bytes).expect("flip");
    let target = tmp.path().join("restored");
    let r = kalamctl(&["backup", "restore", s(&repo), "--to", s(&target)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    // Counted per file of the manifest: files with the same content share one object.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(repo.join("backups/1.json")).expect("manifest"))
            .expect("json");
    let entries = manifest["files"].as_array().expect("files");
    let using = |object: &str| {
        entries
            .iter()
            .filter(|e| e["sha256"].as_str().is_some_and(|h| object.ends_with(h)))
            .count()
    };
    let (missing, corrupt) = (using(gone), using(flipped));
    assert!(missing > 0 && corrupt > 0);
    assert!(
        r.stderr.contains(&format!(
            "of {} file(s), {} intact, {missing} missing and {corrupt} corrupt",
            entries.len(),
            entries.len() - missing - corrupt
        )),
        "{}",
        r.stderr
    );
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("restoring"))
            .count(),
        0,
        "no restore debris"
    );
    let r = run(&["backup", "verify", s(&repo), "--deep"]);
    assert_eq!(r.code, 3);
    let mut kinds: Vec<String> = r.json()["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["problem"].as_str().map(str::to_string))
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["checksum", "missing"], "{}", r.stdout);
}

fn make_writable(path: &Path) {
    let mut perms = std::fs::metadata(path).expect("meta").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).expect("chmod");
}

#[test]
fn an_incremental_backup_of_an_unchanged_database_copies_almost_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = populated(&tmp.path().join("cold"));
    let values: Vec<String> = (0..5000)
        .map(|i| format!("('k{i}', '{}')", noise(i)))
        .collect();
    bulk(
        &db,
        &format!("INSERT INTO app.cfg VALUES {}", values.join(", ")),
    );
    db.ok("FLUSH TABLE app.cfg");
    bulk(
        &db,
        &format!(
            "INSERT INTO app.cfg VALUES {}",
            (0..5000)
                .map(|i| format!("('h{i}', '{}')", noise(i + 5000)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let repo = tmp.path().join("repo");
    let full = create(&db, &repo);
    let incr = create(&db, &repo);
    let total = full["total_bytes"].as_u64().expect("total");
    assert!(total > 1_000_000, "{full}");
    assert_eq!(incr["parent"], 1);
    let new = incr["new_bytes"].as_u64().expect("new");
    let read = incr["bytes_read"].as_u64().expect("read");
    assert!(new * 50 < total, "incremental wrote {new} of {total} bytes");
    assert!(
        read * 20 < total,
        "incremental read {read} of {total} bytes"
    );
    // Nothing changed: no table's hot rows are counted again.
    assert_eq!(full["counts_kept"], 0, "{full}");
    assert_eq!(incr["counts_kept"], 4, "{incr}");
    assert_eq!(incr["rows"], full["rows"]);

    // One table changes: it alone is counted again, and the count is right (the restore of
    // this backup counts every table itself and refuses any difference from the manifest).
    db.ok("INSERT INTO app.cfg VALUES ('late', 'row')");
    let changed = create(&db, &repo);
    assert_eq!(changed["counts_kept"], 3, "{changed}");
    assert_eq!(
        changed["rows"].as_u64().expect("rows"),
        full["rows"].as_u64().expect("rows") + 1
    );
    let at_3 = tmp.path().join("r3");
    let restored = ok(&["backup", "restore", s(&repo), "--id", "3", "--to", s(&at_3)]);
    assert_eq!(restored["rows"], changed["rows"], "{restored}");
    assert_eq!(content(&db.dir), content(&at_3));

    // --rehash reads and counts everything, but still writes only what is new.
    let rehashed = ok(&create_args(&db, &repo, &["--rehash"]));
    assert!(rehashed["bytes_read"].as_u64().expect("read") >= total);
    assert!(
        rehashed["new_bytes"].as_u64().expect("new") * 50 < total,
        "{rehashed}"
    );
    assert_eq!(rehashed["counts_kept"], 0, "{rehashed}");
    assert_eq!(rehashed["rows"], changed["rows"]);

    let listed = ok(&["backup", "list", s(&repo)]);
    let backups = listed["backups"].as_array().expect("backups");
    assert_eq!(backups.len(), 4);
    assert!(backups.iter().all(|b| b["status"] == "complete"));

    // Prune keeps the newest; what it keeps still restores and verifies deep.
    let pruned = ok(&["backup", "prune", s(&repo), "--keep", "1"]);
    assert_eq!(pruned["kept"], serde_json::json!([4]));
    assert_eq!(pruned["deleted"], serde_json::json!([1, 2, 3]));
    assert_eq!(
        ok(&["backup", "verify", s(&repo), "--deep"])["deep"]["passed"],
        true
    );
    let target = tmp.path().join("r");
    ok(&["backup", "restore", s(&repo), "--to", s(&target)]);
    assert_eq!(content(&db.dir), content(&target));
    let r = kalamctl(&["backup", "prune", s(&repo), "--keep", "0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// 256 hex characters that do not compress away.
fn noise(seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect()
}

fn complete_backups(repo: &Path) -> Vec<u64> {
    if !repo.join("kalamdb-backup.json").exists() {
        return Vec::new();
    }
    ok(&["backup", "list", s(repo)])["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter(|b| b["status"] == "complete")
        .filter_map(|b| b["id"].as_u64())
        .collect()
}

/// Every `backup` job reads `completed` exactly when its backup is listed complete.
fn assert_backup_jobs_tell_the_truth(dir: &Path, repo: &Path) {
    let complete = complete_backups(repo);
    let backups: Vec<Value> = jobs(dir)
        .into_iter()
        .filter(|j| j["job_type"] == "backup")
        .collect();
    assert!(!backups.is_empty());
    for job in backups {
        let id: u64 = job["parameters"][1]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("backup id parameter");
        assert_eq!(
            job["status"] == "completed",
            complete.contains(&id),
            "backup {id} (complete: {complete:?}): {job}"
        );
    }
}

#[test]
fn a_killed_create_never_leaves_a_backup_that_looks_complete() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = populated(&tmp.path().join("cold"));
    let rows: Vec<String> = (0..20_000)
        .map(|i| format!("('r{i}', '{}')", "z".repeat(300)))
        .collect();
    bulk(
        &db,
        &format!("INSERT INTO app.cfg VALUES {}", rows.join(", ")),
    );
    let repo = tmp.path().join("repo");

    // At each fail point the process kills itself (-9) before the manifest is written.
    for point in ["backup.snapshot", "backup.copied"] {
        let r = create_killed_at(&db, &repo, point);
        assert_ne!(r.code, 0, "{point}");
        assert!(complete_backups(&repo).is_empty(), "{point}");
        let listed = ok(&["backup", "list", s(&repo)]);
        assert!(
            listed["backups"]
                .as_array()
                .expect("list")
                .iter()
                .all(|b| b["status"] == "incomplete"),
            "{listed}"
        );
    }

    // Killed after its manifest landed: the backup is complete, and so is its job.
    let r = create_killed_at(&db, &repo, "backup.committed");
    assert_ne!(r.code, 0);
    assert_eq!(complete_backups(&repo).len(), 1);
    let v = run(&["verify", "--data-dir", db.path()]);
    assert_eq!(v.code, 1, "{}", v.stdout);
    let finding = v.json()["findings"][0].clone();
    assert_eq!(finding["code"], "state.abandoned_job", "{finding}");
    assert!(
        finding["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("it is completed (its backup is in the repository)")),
        "{finding}"
    );
    assert_backup_jobs_tell_the_truth(&db.dir, &repo);
    let v = run(&["backup", "verify", s(&repo)]);
    assert_eq!(v.code, 0, "{}", v.stdout);

    // Real kill -9 at many moments. Where each kill landed is classified, and the kills must
    // have landed at several distinct points, some of them mid-copy.
    let mut completed_runs = 0;
    let mut landed: BTreeMap<&str, u32> = BTreeMap::new();
    for delay_ms in (0..400).step_by(25) {
        let before = complete_backups(&repo);
        let jobs_before = jobs(&db.dir).len();
        let status =
            kalamctl_killed_after(&create_args(&db, &repo, &["--format", "json"]), delay_ms);
        let after = complete_backups(&repo);
        let where_ = if status.success() {
            "finished"
        } else if after.len() > before.len() {
            "after the manifest"
        } else if jobs(&db.dir).len() > jobs_before {
            "mid-copy (job recorded, no manifest)"
        } else {
            "before the job row"
        };
        *landed.entry(where_).or_insert(0) += 1;
        if status.success() {
            completed_runs += 1;
            assert_eq!(after.len(), before.len() + 1);
        } else {
            // Killed before its manifest landed: nothing new; after: one new, whole backup
            // (checked below).
            assert!(after.len() <= before.len() + 1, "{before:?} -> {after:?}");
        }
        // Whatever is listed complete is complete.
        if !after.is_empty() {
            let v = run(&["backup", "verify", s(&repo)]);
            assert_eq!(v.code, 0, "after a kill at {delay_ms} ms: {}", v.stdout);
        }
    }
    // The next run cleans up after the killed ones and succeeds.
    let last = create(&db, &repo);
    assert!(
        files_under(&repo.join("tmp")).is_empty(),
        "{:?}",
        files_under(&repo.join("tmp"))
    );
    assert!(!db.dir.join("backup").exists(), "staging removed");
    let listed = ok(&["backup", "list", s(&repo)]);
    assert!(
        listed["backups"]
            .as_array()
            .expect("list")
            .iter()
            .all(|b| b["status"] == "complete")
    );
    let v = run(&[
        "backup",
        "verify",
        s(&repo),
        "--id",
        &last["backup_id"].to_string(),
        "--deep",
    ]);
    assert_eq!(v.code, 0, "{}", v.stdout);
    // No job of the killed runs is reported running, and each reads as its backup ended.
    assert!(jobs(&db.dir).iter().all(|j| j["status"] != "running"));
    assert_backup_jobs_tell_the_truth(&db.dir, &repo);
    eprintln!("{completed_runs} of 16 runs finished before their kill; kills landed {landed:?}");
    let killed: Vec<&&str> = landed.keys().filter(|k| **k != "finished").collect();
    assert!(
        killed.len() >= 2 && landed.contains_key("mid-copy (job recorded, no manifest)"),
        "the kills must land at distinct points, mid-copy among them: {landed:?}"
    );
}

#[test]
fn bad_input_gets_one_line_its_exit_code_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = Db::new();
    let not_repo = tmp.path().join("stuff");
    std::fs::create_dir_all(&not_repo).expect("mkdir");
    std::fs::write(not_repo.join("keep.txt"), "mine").expect("write");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            argv(&["backup", "list", s(&tmp.path().join("nope"))]),
            2,
            "not a backup repository",
        ),
        (
            argv(&[
                "backup",
                "create",
                "--data-dir",
                db.path(),
                "--to",
                s(&not_repo),
            ]),
            2,
            "not empty",
        ),
        (
            argv(&[
                "backup",
                "create",
                "--data-dir",
                db.path(),
                "--to",
                s(&db.dir.join("inside")),
            ]),
            2,
            "inside the data directory",
        ),
        (
            argv(&["backup", "create", "--to", s(&tmp.path().join("r"))]),
            2,
            "--data-dir",
        ),
        (
            argv(&[
                "backup",
                "create",
                "--data-dir",
                s(&tmp.path().join("nodb")),
                "--to",
                s(&tmp.path().join("r")),
            ]),
            2,
            "not a KalamDB data directory",
        ),
        (
            argv(&[
                "backup",
                "create",
                "--server",
                "http://127.0.0.1:1",
                "--to",
                "/x",
            ]),
            2,
            "--token",
        ),
    ];
    // Both trees, byte for byte: the scratch directory and the whole data directory (RocksDB
    // files included), since a refusal must not even open the database for writing.
    let before = (common::snapshot(tmp.path()), common::snapshot(&db.dir));
    for (args, code, needle) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = kalamctl(&refs);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "{args:?}: {}",
            r.stderr
        );
    }
    let after = (common::snapshot(tmp.path()), common::snapshot(&db.dir));
    assert!(before.1.iter().any(|(f, _)| f.starts_with("rocksdb/")));
    assert_eq!(
        before.0, after.0,
        "nothing changed in the scratch directory"
    );
    assert_eq!(before.1, after.1, "nothing changed in the data directory");
    assert!(!db.dir.join("inside").exists());
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_database_with_verify_errors_restores_only_when_allowed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = populated(&tmp.path().join("cold"));
    // A row the engine would never write: the source fails verify before any backup.
    kalamdb_store::Storage::open(&db.dir.join("rocksdb"), kalamdb_store::OpenMode::ReadWrite)
        .expect("open")
        .put("user_table:app:notes", b"alice:99", b"[1]")
        .expect("put");
    assert_eq!(run(&["verify", "--data-dir", db.path()]).code, 3);
    let repo = tmp.path().join("repo");
    create(&db, &repo);

    // Refused by default: one line naming the error, the cause and the way out; nothing left.
    let to = tmp.path().join("restored");
    let r = run(&["backup", "restore", s(&repo), "--to", s(&to)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    for needle in [
        "data.value_invalid",
        "files are intact",
        "--allow-verify-errors",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restored"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Allowed: restored, every row as in the source (the bad one too), and still exit 3.
    let r = run(&[
        "backup",
        "restore",
        s(&repo),
        "--to",
        s(&to),
        "--allow-verify-errors",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("verify error(s)"), "{}", r.stderr);
    let report = r.json();
    assert_eq!(report["verify_errors"], 1, "{report}");
    assert!(
        report["first_verify_error"]
            .as_str()
            .is_some_and(|e| e.contains("alice:99")),
        "{report}"
    );
    assert_eq!(raw_rows(&to), raw_rows(&db.dir));
    let v = run(&["verify", "--data-dir", s(&to)]);
    assert_eq!(v.code, 3, "{}", v.stdout);
    assert!(v.stdout.contains("data.value_invalid"), "{}", v.stdout);
}

/// Runs kalamctl under a pseudo-terminal (util-linux `script`); returns what the terminal
/// showed (stdout and stderr together).
fn on_a_terminal(args: &[&str]) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_kalamctl"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .env_remove("KALAMDB_DATA_DIR")
        .output()
        .expect("util-linux `script` runs the command under a terminal");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_progress_bar_and_json_never_does() {
    let (tmp, _db, repo) = backed_up();

    let to = tmp.path().join("a");
    let shown = on_a_terminal(&["backup", "restore", s(&repo), "--to", s(&to)]);
    assert!(shown.contains("restoring ["), "{shown}");
    assert!(shown.contains("files"), "{shown}");
    assert!(shown.contains("restored to"), "{shown}");

    let to = tmp.path().join("b");
    let shown = on_a_terminal(&[
        "backup",
        "restore",
        s(&repo),
        "--to",
        s(&to),
        "--format",
        "json",
    ]);
    assert!(
        !shown.contains("restoring") && !shown.contains('\x1b'),
        "{shown}"
    );
    let report: Value = serde_json::from_str(shown.trim()).expect("only JSON");
    assert_eq!(report["backup_id"], 1);
}

#[test]
fn verifying_a_repository_that_holds_no_backup_is_not_a_pass() {
    let (_tmp, _db, repo) = backed_up();
    // The only manifest is gone: the repository holds no backup any more.
    std::fs::remove_file(repo.join("backups/1.json")).expect("remove manifest");
    for extra in [&[][..], &["--deep"]] {
        let mut args = vec!["backup", "verify", s(&repo)];
        args.extend_from_slice(extra);
        let r = kalamctl(&args);
        assert_eq!(
            r.code, 2,
            "{args:?}: checking nothing must fail: {}",
            r.stdout
        );
        assert!(r.stderr.contains("nothing to verify"), "{}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    }
}

#[test]
fn sigint_and_sigterm_stop_a_backup_with_exit_5_and_no_debris() {
    let (_tmp, db, repo) = backed_up();
    let before = complete_backups(&repo);
    let objects_before = files_under(&repo.join("objects"));
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let jobs_before = jobs(&db.dir).len();
        // The snapshot is taken, then the signal lands before any object is copied.
        let run = common::kalamctl_signalled_after(
            &create_args(&db, &repo, &["--rehash"]),
            &[("FAILPOINTS", "backup.snapshot=sleep(1200)")],
            signal,
            500,
        );
        assert_eq!(run.code, 5, "signal {signal}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
        let all = jobs(&db.dir);
        assert_eq!(all.len(), jobs_before + 1, "the run recorded its job");
        let newest = all
            .iter()
            .filter(|j| j["job_type"] == "backup")
            .max_by_key(|j| j["start_time"].as_i64())
            .expect("backup job");
        assert_eq!(newest["status"], "cancelled", "{newest}");
        assert_eq!(complete_backups(&repo), before, "no new backup listed");
        assert!(
            files_under(&repo.join("tmp")).is_empty(),
            "no partial object"
        );
        assert_eq!(files_under(&repo.join("objects")), objects_before);
        assert!(
            !repo.join("backups").read_dir().expect("list").any(|e| e
                .map(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .unwrap_or(false)),
            "no partial marker"
        );
        assert!(
            !db.dir.join("backup").exists(),
            "the staging directory is gone"
        );
    }
    // The repository is intact and takes the next backup.
    assert_eq!(run(&["backup", "verify", s(&repo)]).code, 0);
    create(&db, &repo);
}

/// Restore compares every table's counts, hot and cold, with the manifest's, from the same
/// pass that verifies the copy: a manifest whose counts disagree with its (intact) files is
/// refused, by restore and by `verify --deep`, naming the table, and nothing is restored.
#[test]
fn counts_that_differ_from_the_manifest_refuse_the_restore() {
    let (tmp, _db, repo) = backed_up();
    let path = repo.join("backups/1.json");
    let original = std::fs::read(&path).expect("manifest");
    make_writable(&path);
    for (table, part) in [
        ("app.notes", "hot"),
        ("app.notes", "cold"),
        ("app.events", "hot"),
    ] {
        let mut manifest = kalamdb_backup::Manifest::parse(&original).expect("parse");
        let counts = manifest.tables.get_mut(table).expect("table in manifest");
        match part {
            "hot" => counts.hot_rows += 1,
            _ => counts.cold_rows += 1,
        }
        std::fs::write(&path, manifest.seal().expect("seal")).expect("write");

        let to = tmp.path().join(format!("restored-{table}-{part}"));
        let r = run(&["backup", "restore", s(&repo), "--to", s(&to)]);
        assert_eq!(r.code, 3, "{table} {part}: {}", r.stderr);
        assert!(
            r.stderr.contains("row counts differ from the manifest") && r.stderr.contains(table),
            "{table} {part}: {}",
            r.stderr
        );
        assert!(!to.exists(), "{table} {part}: nothing restored");
        let deep = run(&["backup", "verify", s(&repo), "--deep"]);
        assert_eq!(deep.code, 3, "{table} {part}: {}", deep.stdout);
    }
    // The untouched manifest restores.
    std::fs::write(&path, &original).expect("write");
    let to = tmp.path().join("restored");
    ok(&["backup", "restore", s(&repo), "--to", s(&to)]);
}

/// A restore skips hashing Parquet files again in its verify pass only where the copy pass
/// already matched them against their own cold-tier manifest SHA-256: a Parquet file whose
/// bytes changed before the backup (so the backup holds the changed bytes faithfully) is
/// still found by the restore's verify and refused, naming the finding.
#[test]
fn a_parquet_file_that_changed_before_the_backup_is_still_found_by_the_restore() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = populated(&tmp.path().join("cold"));
    let dir = db.storage().join("app/cfg");
    let file = files_under(&dir)
        .into_iter()
        .find(|f| f.ends_with(".parquet"))
        .expect("a batch file");
    let path = dir.join(file);
    let mut bytes = std::fs::read(&path).expect("read");
    // A byte of the first data page: the footer still reads, the checksum does not match.
    bytes[8] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let repo = tmp.path().join("repo");
    create(&db, &repo);
    let to = tmp.path().join("restored");
    let r = run(&["backup", "restore", s(&repo), "--to", s(&to)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cold.batch_checksum_mismatch"),
        "{}",
        r.stderr
    );
    assert!(!to.exists(), "nothing restored");
}
