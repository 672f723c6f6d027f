//! Storage locations managed with SQL: CREATE, ALTER, DROP and SHOW STORAGES, tables on a
//! location of their own, and the rules that keep their Parquet files findable.

mod common;
use common::{Db, files_under};
use serde_json::json;

#[test]
fn a_filesystem_storage_holds_its_tables_files_and_stays_while_they_use_it() {
    let db = Db::new();
    let archive = db.dir.parent().expect("tmp").join("archive");
    let path = archive.display().to_string();
    db.ok(&format!(
        "CREATE STORAGE archive TYPE filesystem PATH '{path}' CREDENTIALS 'ops'"
    ));
    db.ok("CREATE STORAGE IF NOT EXISTS archive TYPE filesystem PATH '/elsewhere'");
    db.fails(
        "CREATE STORAGE archive TYPE filesystem PATH '/x'",
        2,
        "already exists",
    );
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT) WITH (STORAGE = 'archive')");
    db.ok(
        "CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT) WITH (STORAGE = 'archive')",
    );
    db.ok("INSERT INTO app.cfg VALUES ('theme', 'dark')");
    db.ok_as(Some("alice"), "INSERT INTO app.notes VALUES (1, 'hi')");
    db.ok("FLUSH TABLE app.cfg; FLUSH TABLE app.notes");
    let files = files_under(&archive);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("app/cfg/batch-"), "{files:?}");
    assert!(files[1].starts_with("app/notes/alice/batch-"), "{files:?}");
    assert!(
        files_under(&db.storage()).is_empty(),
        "nothing on the default storage"
    );
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT id, body FROM app.notes"),
        vec![json!({"id": 1, "body": "hi"})]
    );

    let shown = db.rows("SHOW STORAGES");
    assert_eq!(
        shown
            .iter()
            .map(|r| (r["name"].clone(), r["type"].clone(), r["tables"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!("archive"), json!("filesystem"), json!(2)),
            (json!("local"), json!("filesystem"), json!(0)),
        ]
    );
    assert_eq!(shown[0]["path"], path.as_str());
    assert_eq!(
        shown[0]["credentials"], "ops",
        "a profile name, not a secret"
    );
    let recorded = db.rows(
        "SELECT location_type, path, credentials_ref FROM system.storage_locations WHERE location_name = 'archive'",
    );
    assert_eq!(
        recorded,
        vec![json!({"location_type": "filesystem", "path": path, "credentials_ref": "ops"})]
    );

    // While tables use it, it neither moves nor goes; the refusal names them.
    let moved = db.fails("ALTER STORAGE archive SET PATH '/new/place'", 2, "app.cfg");
    assert!(moved.to_string().contains("app.notes"), "{moved}");
    let dropped = db.fails("DROP STORAGE archive", 2, "used by 2 table(s)");
    assert!(dropped.to_string().contains("app.cfg"), "{dropped}");
    db.ok("ALTER STORAGE archive SET CREDENTIALS 'ops2'");
    db.ok("ALTER STORAGE archive SET CREDENTIALS NULL");
    assert!(db.rows("SHOW STORAGES")[0]["credentials"].is_null());

    db.ok("DROP TABLE app.cfg; DROP USER TABLE app.notes");
    assert!(
        files_under(&archive).is_empty(),
        "the drops deleted the tables' files there: {:?}",
        files_under(&archive)
    );
    db.ok("ALTER STORAGE archive SET PATH '/new/place'");
    db.ok("DROP STORAGE archive");
    db.ok("DROP STORAGE IF EXISTS archive");
    db.fails("DROP STORAGE archive", 2, "does not exist");
    assert_eq!(db.rows("SHOW STORAGES").len(), 1);
}

#[test]
fn storage_statements_are_checked_and_for_admins_only() {
    let db = Db::new();
    for (sql, needle) in [
        (
            "CREATE STORAGE a TYPE ftp PATH '/x'",
            "TYPE is filesystem or s3",
        ),
        ("CREATE STORAGE a TYPE filesystem", "expected PATH"),
        ("CREATE STORAGE a TYPE filesystem PATH /x", "quoted string"),
        (
            "CREATE STORAGE a TYPE filesystem PATH 's3://b/p'",
            "is a URL",
        ),
        ("CREATE STORAGE a TYPE s3 PATH '/x'", "not an s3:// URL"),
        ("CREATE STORAGE a TYPE filesystem PATH '/x/../y'", "'..'"),
        (
            "CREATE STORAGE Bad TYPE filesystem PATH '/x'",
            "invalid storage name",
        ),
        ("ALTER STORAGE local SET COLOUR 'red'", "SET PATH"),
        ("ALTER STORAGE nope SET PATH '/x'", "does not exist"),
        ("DROP STORAGE local", "cannot be dropped"),
    ] {
        db.fails(sql, 2, needle);
    }
    assert_eq!(db.rows("SHOW STORAGES").len(), 1, "nothing was created");
    for sql in [
        "SHOW STORAGES",
        "CREATE STORAGE a TYPE filesystem PATH '/x'",
        "DROP STORAGE local",
    ] {
        db.fails_as(Some("alice"), sql, 2, "needs the admin role");
    }
    // An object-storage location can be recorded; a table on it needs its credentials
    // profile configured (tests/object_storage.rs uses a real server).
    db.ok("CREATE STORAGE lake TYPE s3 PATH 's3://bucket/prefix' CREDENTIALS 'aws'");
    db.ok("CREATE NAMESPACE app");
    db.fails(
        "CREATE SHARED TABLE app.t (id INT PRIMARY KEY) WITH (STORAGE = 'lake')",
        2,
        "credentials profile 'aws'",
    );
    assert_eq!(db.rows("SHOW STORAGES")[0]["type"], "s3");
}
