//! Namespaces, tables, SHOW, DESCRIBE and refused statements, through SQL on an engine in
//! this process.

mod common;
use common::Db;
use serde_json::json;

#[test]
fn namespace_lifecycle() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app");
    db.fails("CREATE NAMESPACE app", 2, "already exists");
    db.ok("CREATE NAMESPACE IF NOT EXISTS app");
    db.ok("ALTER NAMESPACE app SET OPTIONS (owner = 'ops', tier = 'gold')");
    let rows = db.rows("SHOW NAMESPACES");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "app");
    let options: serde_json::Value =
        serde_json::from_str(rows[0]["options"].as_str().expect("options text")).expect("json");
    assert_eq!(options, json!({"owner": "ops", "tier": "gold"}));

    db.ok("CREATE SHARED TABLE app.config (k TEXT PRIMARY KEY, v TEXT)");
    db.ok("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let run = db.fails("DROP NAMESPACE app", 2, "still has 2 table(s)");
    let why = run.to_string();
    assert!(
        why.contains("app.config") && why.contains("app.notes"),
        "{why}"
    );
    assert_eq!(db.rows("SHOW NAMESPACES")[0]["table_count"], 2);

    db.ok("DROP TABLE app.config; DROP USER TABLE app.notes");
    assert_eq!(db.rows("SHOW NAMESPACES")[0]["table_count"], 0);
    db.ok("DROP NAMESPACE app");
    db.ok("DROP NAMESPACE IF EXISTS app");
    db.fails("DROP NAMESPACE app", 2, "does not exist");
    assert!(db.rows("SHOW NAMESPACES").is_empty());
}

#[test]
fn names_are_validated() {
    let db = Db::new();
    db.fails("CREATE NAMESPACE Bad", 2, "invalid namespace name");
    db.fails("CREATE NAMESPACE 1x", 2, "malformed SQL");
    db.fails("CREATE NAMESPACE system", 2, "reserved");
    db.ok("CREATE NAMESPACE app");
    db.fails(
        "CREATE SHARED TABLE app.Bad (x INT)",
        2,
        "invalid table name",
    );
    db.fails(
        "CREATE SHARED TABLE app.t (\"Bad\" INT)",
        2,
        "invalid column name",
    );
    db.fails(
        "CREATE SHARED TABLE nope.t (x INT)",
        2,
        "namespace 'nope' does not exist",
    );
}

#[test]
fn show_and_describe_tables() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE NAMESPACE other");
    db.ok("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, at TIMESTAMP) WITH (FLUSH_POLICY = 'rows:100')");
    db.ok("CREATE STREAM TABLE app.events (kind TEXT) WITH (TTL_SECONDS = 60, MAX_BUFFER = 1000)");
    db.ok("CREATE SHARED TABLE other.cfg (k TEXT PRIMARY KEY)");
    db.fails("CREATE USER TABLE app.notes (id INT)", 2, "already exists");
    db.ok("CREATE USER TABLE IF NOT EXISTS app.notes (id INT)");

    let tables = db.rows("SHOW TABLES IN app");
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table_name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["events", "notes"]);
    assert_eq!(tables[1]["table_type"], "user");
    assert_eq!(
        tables[1]["flush_policy"],
        r#"{"type":"row_limit","row_limit":100}"#
    );
    assert_eq!(db.rows("SHOW TABLES").len(), 3);
    db.fails("SHOW TABLES IN nope", 2, "does not exist");

    let cols = db.rows("DESCRIBE TABLE app.notes");
    let summary: Vec<(String, String, bool, bool)> = cols
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().expect("name").to_string(),
                c["data_type"].as_str().expect("type").to_string(),
                c["is_primary_key"].as_bool().expect("pk"),
                c["is_system"].as_bool().expect("sys"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("id".into(), "BIGINT".into(), true, false),
            ("body".into(), "TEXT".into(), false, false),
            ("at".into(), "TIMESTAMP".into(), false, false),
            ("_updated".into(), "TIMESTAMP".into(), false, true),
            ("_deleted".into(), "BOOLEAN".into(), false, true),
        ]
    );
    let stream_cols = db.rows("DESCRIBE TABLE app.events");
    assert_eq!(
        stream_cols.len(),
        1,
        "stream tables have no system columns: {stream_cols:?}"
    );
}

#[test]
fn create_writes_schema_version_one_and_counts() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let schemas = db.rows("SELECT table_id, version, arrow_schema FROM system.table_schemas");
    assert_eq!(schemas.len(), 1);
    assert_eq!(schemas[0]["table_id"], "app:notes");
    assert_eq!(schemas[0]["version"], 1);
    let schema: serde_json::Value =
        serde_json::from_str(schemas[0]["arrow_schema"].as_str().expect("text")).expect("json");
    let fields: Vec<&str> = schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["name"].as_str().expect("n"))
        .collect();
    assert_eq!(fields, vec!["id", "body", "_updated", "_deleted"]);
    assert_eq!(schema["options"]["primary_key"], "id");
    let tables =
        db.rows("SELECT table_id, table_type, schema_version, storage_location FROM system.tables");
    assert_eq!(
        tables,
        vec![
            json!({"table_id": "app:notes", "table_type": "user", "schema_version": 1, "storage_location": "local"})
        ]
    );
    let loc = db.rows("SELECT location_name, usage_count FROM system.storage_locations");
    assert_eq!(
        loc,
        vec![json!({"location_name": "local", "usage_count": 1})]
    );
}

/// Every system table and every row of app.t, as JSON text.
fn logical_state(db: &Db) -> String {
    let mut out = String::new();
    for t in [
        "users",
        "namespaces",
        "storage_locations",
        "live_queries",
        "tables",
        "table_schemas",
    ] {
        out.push_str(&format!(
            "{:?}",
            db.rows(&format!("SELECT * FROM system.{t}"))
        ));
    }
    out.push_str(&format!(
        "{:?}",
        db.rows("SELECT * FROM app.t WHERE _deleted = true OR _deleted = false ORDER BY id")
    ));
    out
}

#[test]
fn refused_statements_change_no_data() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY, name TEXT); INSERT INTO app.t VALUES (1, 'one')");
    let before = logical_state(&db);
    let files_before = common::files_under(&db.storage());
    db.fails("INSERT INTO app.t VALUES ('x', 'a')", 2, "expected INT");
    db.fails("INSERT INTO app.t VALUES (2, 'a'), (3, 3)", 2, "row 2");
    db.fails(
        "INSERT INTO app.t VALUES (1, 'again')",
        2,
        "duplicate primary key",
    );
    db.fails("INSERT INTO app.nope VALUES (1)", 2, "does not exist");
    db.fails("SELECT * FROM app.nope", 2, "does not exist");
    db.fails("SELECT * FROM t", 2, "needs its namespace");
    db.fails(
        "INSERT INTO app.t (id, color) VALUES (1, 'red')",
        2,
        "column 'color' does not exist",
    );
    db.fails("CREATE SHARED TABLE app.t (id INT)", 2, "already exists");
    db.fails("CREATE NAMESPACE app", 2, "already exists");
    db.fails(
        "CREATE USER TABLE app.u (id INT) WITH (STORAGE = '/x/no-user')",
        2,
        "${user_id}",
    );
    assert_eq!(
        before,
        logical_state(&db),
        "refused statements must not change data"
    );
    assert_eq!(files_before, common::files_under(&db.storage()));
    let cfs = std::fs::read_dir(db.dir.join("rocksdb"))
        .expect("dir")
        .count();
    assert!(cfs > 0);
    assert!(
        db.rows("SELECT * FROM system.tables WHERE table_name = 'u'")
            .is_empty(),
        "no half-created table"
    );
}

#[test]
fn table_options_are_recorded() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app");
    db.ok("CREATE SHARED TABLE app.a (id INT PRIMARY KEY) WITH (STORAGE = 'local', DELETED_RETENTION = '7d', FLUSH_POLICY = 'interval:60')");
    db.ok("CREATE STREAM TABLE app.s (v INT) WITH (TTL_SECONDS = 30, MAX_BUFFER = 500)");
    let rows = db.rows("SELECT table_name, storage_location, deleted_retention_hours, flush_policy, ttl_seconds, max_buffer FROM system.tables ORDER BY table_name");
    assert_eq!(
        rows,
        vec![
            json!({"table_name": "a", "storage_location": "local", "deleted_retention_hours": 168,
                   "flush_policy": "{\"type\":\"time_interval\",\"interval_seconds\":60}", "ttl_seconds": null, "max_buffer": null}),
            json!({"table_name": "s", "storage_location": "local", "deleted_retention_hours": null,
                   "flush_policy": "", "ttl_seconds": 30, "max_buffer": 500}),
        ]
    );
    assert_eq!(
        db.rows("SELECT usage_count FROM system.storage_locations"),
        vec![json!({"usage_count": 2})]
    );
    db.fails(
        "CREATE SHARED TABLE app.b (id INT) WITH (DELETED_RETENTION = 'soon')",
        2,
        "DELETED_RETENTION",
    );
    db.fails(
        "CREATE SHARED TABLE app.b (id INT) WITH (FLUSH_POLICY = 'rows:zero')",
        2,
        "FLUSH_POLICY",
    );
    db.fails(
        "CREATE STREAM TABLE app.b (id INT) WITH (FLUSH_POLICY = 'rows:5')",
        2,
        "do not apply",
    );
}

#[test]
fn shared_primary_keys_are_unique_per_table() {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT)");
    db.ok_as(
        Some("alice"),
        "INSERT INTO app.cfg VALUES ('theme', 'dark')",
    );
    db.fails_as(
        Some("bob"),
        "INSERT INTO app.cfg VALUES ('theme', 'light')",
        2,
        "duplicate primary key 'theme'",
    );
    db.fails(
        "INSERT INTO app.cfg VALUES ('a', '1'), ('a', '2')",
        2,
        "duplicate primary key 'a' within the INSERT",
    );
    assert_eq!(
        db.rows("SELECT k, v FROM app.cfg"),
        vec![json!({"k": "theme", "v": "dark"})]
    );
}
