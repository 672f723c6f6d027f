//! Flush to Parquet and reads that merge both tiers, through SQL on an engine in this process.

mod common;
use common::{Db, files_under};
use serde_json::json;

#[test]
fn user_tables_flush_one_file_per_user_and_merge_on_read() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    db.ok_as(
        Some("alice"),
        "INSERT INTO app.notes VALUES (1, 'a1'), (2, 'a2'), (3, 'a3')",
    );
    db.ok_as(Some("bob"), "INSERT INTO app.notes VALUES (1, 'b1')");
    db.ok_as(Some("alice"), "DELETE FROM app.notes WHERE id = 3");

    let r = db.ok("FLUSH TABLE app.notes");
    assert_eq!(r[0]["row_count"], 4, "{r:?}");
    let files = files_under(&db.storage());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with("app/notes/alice/batch-") && files[0].ends_with(".parquet"),
        "{files:?}"
    );
    assert!(files[1].starts_with("app/notes/bob/batch-"), "{files:?}");
    assert!(
        files_under(&db.storage())
            .iter()
            .all(|f| !f.contains(".tmp")),
        "no temp files left"
    );

    // Reads come from Parquet now, exactly once per row.
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT id, body FROM app.notes ORDER BY id"),
        vec![json!({"id":1,"body":"a1"}), json!({"id":2,"body":"a2"})]
    );
    // The soft-deleted row was flushed, not lost.
    assert_eq!(
        db.rows_as(
            Some("alice"),
            "SELECT id FROM app.notes WHERE _deleted = true"
        ),
        vec![json!({"id":3})]
    );

    // Update a cold row: the new hot version wins; a second flush keeps it winning.
    db.ok_as(
        Some("alice"),
        "UPDATE app.notes SET body = 'a1 v2' WHERE id = 1",
    );
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT body FROM app.notes WHERE id = 1"),
        vec![json!({"body":"a1 v2"})]
    );
    db.ok("FLUSH TABLE app.notes");
    db.ok_as(
        Some("alice"),
        "UPDATE app.notes SET body = 'a1 v3' WHERE id = 1",
    );
    db.ok("FLUSH TABLE app.notes");
    assert_eq!(
        files_under(&db.dir.join("storage/app/notes/alice")).len(),
        3
    );
    let rows = db.rows_as(Some("alice"), "SELECT id, body FROM app.notes ORDER BY id");
    assert_eq!(
        rows,
        vec![json!({"id":1,"body":"a1 v3"}), json!({"id":2,"body":"a2"})],
        "newest wins, each row once"
    );
    // Duplicate checks see cold rows too.
    db.fails_as(
        Some("alice"),
        "INSERT INTO app.notes VALUES (2, 'dup')",
        2,
        "duplicate primary key",
    );
    assert_eq!(
        db.rows_as(Some("bob"), "SELECT body FROM app.notes"),
        vec![json!({"body":"b1"})]
    );

    // Every flush is a completed job.
    let jobs =
        db.rows("SELECT job_type, status, table_name, result FROM system.jobs ORDER BY start_time");
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter().all(|j| j["job_type"] == "flush"
            && j["status"] == "completed"
            && j["table_name"] == "app.notes"),
        "{jobs:?}"
    );
    let first: serde_json::Value =
        serde_json::from_str(jobs[0]["result"].as_str().expect("result")).expect("json");
    assert_eq!(
        (first["files"].clone(), first["rows"].clone()),
        (json!(2), json!(4))
    );
}

#[test]
fn shared_tables_flush_to_one_file_and_custom_storage_paths() {
    let db = Db::new();
    let custom = db.dir.join("elsewhere");
    let template = format!("{}/${{user_id}}/inbox", custom.display());
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT)");
    db.ok(&format!(
        "CREATE USER TABLE app.inbox (id INT PRIMARY KEY) WITH (STORAGE = '{template}')"
    ));
    db.fails(
        "CREATE USER TABLE app.bad (id INT) WITH (STORAGE = '/tmp/no-user-segment')",
        2,
        "${user_id}",
    );
    db.ok("INSERT INTO app.cfg VALUES ('a', '1'), ('b', '2')");
    db.ok_as(Some("u1"), "INSERT INTO app.inbox VALUES (7)");
    db.ok("FLUSH TABLE app.cfg; FLUSH TABLE app.inbox");
    assert_eq!(files_under(&db.dir.join("storage/app/cfg")).len(), 1);
    let inbox = files_under(&custom);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].starts_with("u1/inbox/batch-"), "{inbox:?}");
    assert_eq!(
        db.rows_as(Some("u1"), "SELECT id FROM app.inbox"),
        vec![json!({"id":7})]
    );
    assert_eq!(
        db.rows("SELECT k, v FROM app.cfg ORDER BY k"),
        vec![json!({"k":"a","v":"1"}), json!({"k":"b","v":"2"})]
    );

    // DROP removes the table everywhere: catalog, hot tier and every user's Parquet files.
    db.ok("DROP TABLE app.inbox; DROP SHARED TABLE app.cfg");
    assert!(
        files_under(&custom).is_empty(),
        "{:?}",
        files_under(&custom)
    );
    assert!(
        files_under(&db.storage()).is_empty(),
        "{:?}",
        files_under(&db.storage())
    );
    assert!(db.rows("SELECT * FROM system.tables").is_empty());
    assert!(db.rows("SELECT * FROM system.table_schemas").is_empty());
    let jobs = db.rows("SELECT status FROM system.jobs WHERE job_type = 'table_deletion'");
    assert_eq!(
        jobs,
        vec![json!({"status":"completed"}), json!({"status":"completed"})]
    );
    // The names are free again.
    db.ok("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY)");
    assert!(
        db.rows("SELECT * FROM app.cfg").is_empty(),
        "a re-created table starts empty"
    );
    db.ok("DROP TABLE IF EXISTS app.nope");
    db.fails("DROP TABLE app.nope", 2, "does not exist");
    db.fails("DROP USER TABLE app.cfg", 2, "is a shared table");
}

/// Raw writes to the closed directory's RocksDB: what a migrated legacy directory carries.
fn with_storage(db: &mut Db, f: impl FnOnce(&kalamdb_store::Storage)) {
    db.closed(|dir| {
        let storage =
            kalamdb_store::Storage::open(&dir.join("rocksdb"), kalamdb_store::OpenMode::ReadWrite)
                .expect("open");
        f(&storage);
    });
}

#[test]
fn nothing_is_written_to_a_local_path_made_from_an_s3_url() {
    let mut db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)");
    // A storage location on object storage.
    with_storage(&mut db, |storage| {
        let loc = json!({"location_name": "archive", "location_type": "s3", "path": "s3://kalam-archive/v1", "credentials_ref": "aws-prod", "usage_count": 0, "created_at": 1, "updated_at": 1});
        storage
            .put(
                "system_storage_locations",
                b"loc:archive",
                loc.to_string().as_bytes(),
            )
            .expect("put");
    });
    // Its credentials profile is not configured: new tables on it are refused, and so is a
    // URL given as a path.
    db.fails(
        "CREATE SHARED TABLE app.a (id BIGINT PRIMARY KEY) WITH (STORAGE = 'archive')",
        2,
        "credentials profile 'aws-prod'",
    );
    db.fails(
        "CREATE SHARED TABLE app.b (id BIGINT PRIMARY KEY) WITH (STORAGE = 's3://bucket/b')",
        2,
        "is a URL",
    );
    // A table already on it (a migrated legacy table): writes and reads work in the hot tier,
    // and FLUSH says why it cannot move them, writing nothing and recording no failed job.
    // (With the profile configured, flush writes to the bucket: tests/object_storage.rs.)
    with_storage(&mut db, |storage| {
        let key = b"table:app:t";
        let mut row: serde_json::Value = serde_json::from_slice(
            &storage
                .get("system_tables", key)
                .expect("get")
                .expect("row"),
        )
        .expect("json");
        row["storage_location"] = "archive".into();
        storage
            .put("system_tables", key, row.to_string().as_bytes())
            .expect("put");
    });
    db.ok("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')");
    let refused = db.fails("FLUSH TABLE app.t", 2, "storage.credentials.aws-prod");
    assert!(refused.to_string().contains("stay in RocksDB"), "{refused}");
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM app.t"),
        vec![json!({"n": 2})]
    );
    assert!(
        files_under(&db.dir)
            .iter()
            .all(|f| !f.contains("s3:") && !f.ends_with(".parquet")),
        "{:?}",
        files_under(&db.dir)
    );
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM system.jobs WHERE job_type = 'flush'"),
        vec![json!({"n": 0})]
    );
}

/// A flush streams: a user's rows past the file limit go into several batch files, each
/// recorded with its own key range, and reads (scans, point lookups, the duplicate check of
/// INSERT) see every row exactly once across them.
#[test]
fn a_flush_cuts_large_users_into_several_files() {
    let db = Db::new();
    db.engine().set_flush_file_rows(3);
    db.ok("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let values: Vec<String> = (0..10).map(|i| format!("({i}, 'a{i}')")).collect();
    db.ok_as(
        Some("alice"),
        &format!("INSERT INTO app.notes VALUES {}", values.join(", ")),
    );
    db.ok_as(
        Some("bob"),
        "INSERT INTO app.notes VALUES (1, 'b1'), (2, 'b2')",
    );

    let r = db.ok("FLUSH TABLE app.notes");
    assert_eq!(r[0]["row_count"], 12, "{r:?}");
    assert!(
        r[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("into 5 file(s)"),
        "alice's 10 rows in 4 files, bob's 2 in one: {r:?}"
    );
    let files = files_under(&db.storage());
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with("app/notes/alice/"))
            .count(),
        4,
        "{files:?}"
    );
    assert_eq!(
        db.rows_as(
            Some("alice"),
            "SELECT count(*) AS n, sum(id) AS s FROM app.notes"
        ),
        vec![json!({"n": 10, "s": 45})]
    );
    for i in 0..10 {
        assert_eq!(
            db.rows_as(
                Some("alice"),
                &format!("SELECT body FROM app.notes WHERE id = {i}")
            ),
            vec![json!({ "body": format!("a{i}") })]
        );
        db.fails_as(
            Some("alice"),
            &format!("INSERT INTO app.notes VALUES ({i}, 'again')"),
            2,
            &format!("duplicate primary key '{i}'"),
        );
    }
    // The hot tier is empty: every row moved, none twice.
    assert_eq!(db.ok("FLUSH TABLE app.notes")[0]["row_count"], 0);
}
