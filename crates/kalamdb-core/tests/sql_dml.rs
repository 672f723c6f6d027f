//! DML on the three table types, user isolation and permissions, through SQL on an engine
//! in this process.

mod common;
use common::Db;
use serde_json::json;

#[test]
fn user_tables_isolate_users_and_soft_delete() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, stars INT)");
    db.ok_as(
        Some("alice"),
        "INSERT INTO app.notes (id, body, stars) VALUES (1, 'a1', 1), (2, 'a2', 2)",
    );
    db.ok_as(
        Some("bob"),
        "INSERT INTO app.notes (id, body, stars) VALUES (1, 'b1', 5)",
    );
    // Keys are per user: alice's 1 and bob's 1 are different rows.
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT id, body FROM app.notes ORDER BY id"),
        vec![json!({"id":1,"body":"a1"}), json!({"id":2,"body":"a2"})]
    );
    assert_eq!(
        db.rows_as(Some("bob"), "SELECT id, body FROM app.notes"),
        vec![json!({"id":1,"body":"b1"})]
    );
    assert!(
        db.rows("SELECT * FROM app.notes").is_empty(),
        "the admin acts as its own user id"
    );

    // Duplicate keys are refused per user.
    db.fails_as(
        Some("alice"),
        "INSERT INTO app.notes (id, body) VALUES (2, 'again')",
        2,
        "duplicate primary key '2'",
    );

    // UPDATE with an expression; _updated moves forward.
    let before = db.rows_as(
        Some("alice"),
        "SELECT CAST(_updated AS BIGINT) AS u FROM app.notes WHERE id = 1",
    )[0]["u"]
        .as_i64()
        .expect("ms");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = db.ok_as(
        Some("alice"),
        "UPDATE app.notes SET stars = stars + 10, body = 'a1!' WHERE id = 1",
    );
    assert_eq!(r[0]["row_count"], 1);
    let after = db.rows_as(
        Some("alice"),
        "SELECT body, stars, CAST(_updated AS BIGINT) AS u FROM app.notes WHERE id = 1",
    );
    assert_eq!(
        (after[0]["body"].clone(), after[0]["stars"].clone()),
        (json!("a1!"), json!(11))
    );
    assert!(
        after[0]["u"].as_i64().expect("ms") > before,
        "_updated is set on every write"
    );

    // DELETE is soft: hidden, but there when asked for.
    let r = db.ok_as(Some("alice"), "DELETE FROM app.notes WHERE id = 2");
    assert_eq!(r[0]["row_count"], 1);
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT id FROM app.notes"),
        vec![json!({"id":1})]
    );
    assert_eq!(
        db.rows_as(
            Some("alice"),
            "SELECT id, _deleted FROM app.notes WHERE _deleted = true"
        ),
        vec![json!({"id":2,"_deleted":true})]
    );
    // An UPDATE never resurrects it.
    let r = db.ok_as(
        Some("alice"),
        "UPDATE app.notes SET body = 'zombie' WHERE id = 2 OR _deleted = true",
    );
    assert_eq!(r[0]["row_count"], 0);
    assert_eq!(
        db.rows_as(
            Some("alice"),
            "SELECT body FROM app.notes WHERE _deleted = true"
        ),
        vec![json!({"body":"a2"})]
    );
    // A deleted key may be inserted again.
    db.ok_as(
        Some("alice"),
        "INSERT INTO app.notes (id, body) VALUES (2, 'reborn')",
    );
    assert_eq!(
        db.rows_as(Some("alice"), "SELECT body FROM app.notes WHERE id = 2"),
        vec![json!({"body":"reborn"})]
    );
    // Bob never saw any of it.
    assert_eq!(
        db.rows_as(Some("bob"), "SELECT count(*) AS n FROM app.notes"),
        vec![json!({"n":1})]
    );
}

#[test]
fn shared_tables_and_generated_row_ids() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.log (msg TEXT NOT NULL, level INT)");
    db.ok("INSERT INTO app.log (msg, level) VALUES ('x', 1), ('x', 1), ('y', 2)");
    db.ok_as(
        Some("carol"),
        "INSERT INTO app.log (msg) VALUES ('from carol')",
    );
    assert_eq!(
        db.rows_as(Some("dave"), "SELECT count(*) AS n FROM app.log"),
        vec![json!({"n":4})],
        "shared rows are shared"
    );
    db.fails("INSERT INTO app.log (level) VALUES (3)", 2, "NOT NULL");
    let r = db.ok("UPDATE app.log SET level = 9 WHERE msg = 'x'");
    assert_eq!(r[0]["row_count"], 2);
    db.ok("DELETE FROM app.log WHERE level = 9");
    assert_eq!(
        db.rows("SELECT msg FROM app.log ORDER BY msg"),
        vec![json!({"msg":"from carol"}), json!({"msg":"y"})]
    );
}

#[test]
fn stream_tables_have_no_system_columns_and_expire() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE STREAM TABLE app.events (kind TEXT, n INT) WITH (TTL_SECONDS = 2)");
    db.ok("INSERT INTO app.events (kind, n) VALUES ('click', 1), ('view', 2)");
    let rows = db.rows("SELECT * FROM app.events ORDER BY n");
    assert_eq!(
        rows,
        vec![json!({"kind":"click","n":1}), json!({"kind":"view","n":2})]
    );
    db.fails("SELECT _deleted FROM app.events", 2, "_deleted");
    db.fails("FLUSH TABLE app.events", 2, "never flushed");
    let r = db.ok("DELETE FROM app.events WHERE n = 1");
    assert_eq!(r[0]["row_count"], 1);
    assert_eq!(db.rows("SELECT n FROM app.events"), vec![json!({"n":2})]);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert!(
        db.rows("SELECT * FROM app.events").is_empty(),
        "expired stream rows never show"
    );
}

#[test]
fn types_are_checked() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY, b BOOLEAN, big BIGINT, d DOUBLE, s TEXT, at TIMESTAMP)");
    db.ok("INSERT INTO app.t VALUES (1, true, 5000000000, 1.5, 'x', '2024-01-02T03:04:05Z')");
    db.ok("INSERT INTO app.t (id, d, at) VALUES (2, 3, 1700000000000)");
    let rows = db.rows("SELECT id, b, big, d, s, CAST(at AS BIGINT) AS at FROM app.t ORDER BY id");
    assert_eq!(
        rows[0],
        json!({"id":1,"b":true,"big":5000000000_i64,"d":1.5,"s":"x","at":1704164645000_i64})
    );
    assert_eq!(rows[1]["d"], json!(3.0));
    for (sql, needle) in [
        (
            "INSERT INTO app.t (id, b) VALUES (3, 'yes')",
            "expected BOOLEAN",
        ),
        (
            "INSERT INTO app.t (id) VALUES (5000000000)",
            "out of range for INT",
        ),
        ("INSERT INTO app.t (id, s) VALUES (3, 7)", "expected TEXT"),
        (
            "INSERT INTO app.t (id, s, s) VALUES (3, 'a', 'b')",
            "column 's' is named twice",
        ),
        (
            "INSERT INTO app.t (id, at, at) VALUES (3, NOW(), 1 + 1)",
            "column 'at' is named twice",
        ),
        (
            "INSERT INTO app.t (id, at) VALUES (3, 'tuesday')",
            "not a timestamp",
        ),
        ("UPDATE app.t SET b = 'no' WHERE id = 1", "expected BOOLEAN"),
        ("UPDATE app.t SET id = 9 WHERE id = 1", "primary key"),
        (
            "UPDATE app.t SET _deleted = true",
            "maintained by the engine",
        ),
    ] {
        db.fails(sql, 2, needle);
    }
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM app.t"),
        vec![json!({"n":2})],
        "failed writes wrote nothing"
    );
}

#[test]
fn roles_limit_what_users_do() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY)");
    for sql in [
        "CREATE NAMESPACE x",
        "DROP TABLE app.t",
        "FLUSH TABLE app.t",
        "CREATE SHARED TABLE app.u (id INT)",
    ] {
        db.fails_as(Some("alice"), sql, 2, "needs the admin role");
    }
    db.fails_as(
        Some("alice"),
        "SELECT * FROM system.users",
        2,
        "permission denied",
    );
    db.fails_as(Some("bad:id"), "SELECT 1", 2, "invalid user id");
}

#[test]
fn every_system_table_is_queryable() {
    let db = Db::new();
    // The documented set (specs/format.md); the refusal below lists what the engine has.
    const SYSTEM_TABLES: [&str; 8] = [
        "users",
        "namespaces",
        "storage_locations",
        "live_queries",
        "jobs",
        "tables",
        "table_schemas",
        "cold_batches",
    ];
    let listed = db
        .fails("SELECT * FROM system.nope", 2, "system tables are")
        .to_string();
    let mut named: Vec<&str> = listed
        .rsplit("system tables are: ")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.')
        .split(", ")
        .collect();
    named.sort_unstable();
    let mut documented = SYSTEM_TABLES.to_vec();
    documented.sort_unstable();
    assert_eq!(named, documented, "{listed}");
    for t in SYSTEM_TABLES {
        let results = db.ok(&format!("SELECT * FROM system.{t}"));
        assert!(
            results[0]["columns"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "system.{t} has columns"
        );
    }
    db.fails("SELECT * FROM system.nope", 2, "system tables are");
}
