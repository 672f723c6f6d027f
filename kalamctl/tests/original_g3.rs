//! A directory laid out exactly as the original engine wrote G3 (see
//! specs/legacy-layouts.md) is read correctly once it carries a format marker.
//! Until then it is refused with exit 6 and a pointer to `kalamctl migrate`.

mod common;
use common::kalamctl;
use kalamdb_store::{OpenMode, Storage};
use serde_json::json;

fn put(s: &Storage, cf: &str, key: &str, value: serde_json::Value) {
    s.create_cf(cf).expect("cf");
    s.put(cf, key.as_bytes(), value.to_string().as_bytes())
        .expect("put");
}

/// Writes what the original engine's G3 code wrote: its keys, spellings and units.
fn write_original_g3(rocks: &std::path::Path) {
    let s = Storage::open(rocks, OpenMode::Create).expect("create");
    put(
        &s,
        "system_users",
        "user:alice",
        json!({"user_id": "u-alice", "username": "alice", "email": "a@x.io", "created_at": 1_700_000_000_000_i64}),
    );
    // Namespaces: creation time in seconds, options as JSON text, a table_count reset to 0.
    put(
        &s,
        "system_namespaces",
        "ns:app",
        json!({"namespace_id": "app", "name": "app", "created_at": 1_700_000_000, "options": "{\"owner\":\"ops\"}", "table_count": 0}),
    );
    // G3 storage locations are in seconds too.
    put(
        &s,
        "system_storage_locations",
        "loc:local",
        json!({"location_name": "local", "location_type": "filesystem", "path": "storage", "credentials_ref": null, "usage_count": 2, "created_at": 1_700_000_000, "updated_at": 1_700_000_000}),
    );
    put(
        &s,
        "system_live_queries",
        "lq:u-alice-c1-notes-q1",
        json!({"live_id": "u-alice-c1-notes-q1", "connection_id": "c1", "table_name": "notes", "query_id": "q1", "user_id": "u-alice", "query": "SELECT * FROM notes", "options": "", "created_at": 1_700_000_000_000_i64, "updated_at": 1_700_000_000_000_i64, "changes": 3, "node": "n1"}),
    );
    // Drop-table jobs: seconds and the fixed id; other jobs: milliseconds.
    put(
        &s,
        "system_jobs",
        "job:drop_table:app:old",
        json!({"job_id": "drop_table:app:old", "job_type": "drop_table", "table_name": "app.old", "status": "completed", "start_time": 1_700_000_000, "end_time": 1_700_000_005, "parameters": ["app", "old"], "result": "ok", "trace": null, "memory_used_mb": null, "cpu_used_percent": null, "node_id": "n1", "error_message": null}),
    );
    put(
        &s,
        "system_jobs",
        "job:flush-1",
        json!({"job_id": "flush-1", "job_type": "flush", "table_name": "", "status": "Completed", "start_time": 1_700_000_000_000_i64, "end_time": null, "parameters": [], "result": null, "trace": null, "memory_used_mb": 1.5, "cpu_used_percent": null, "node_id": "n1", "error_message": null}),
    );
    let schema = json!({"fields": [
        {"name": "body", "data_type": "Utf8", "nullable": true},
        {"name": "_updated", "data_type": "Timestamp(Millisecond, None)", "nullable": false},
        {"name": "_deleted", "data_type": "Boolean", "nullable": false}], "options": {}});
    put(
        &s,
        "system_tables",
        "table:app:notes",
        json!({"table_id": "app:notes", "table_name": "notes", "namespace": "app", "table_type": "User", "created_at": 1_700_000_000, "storage_location": "local", "flush_policy": "{\"type\":\"row_limit\",\"row_limit\":1000}", "schema_version": 1, "deleted_retention_hours": 168}),
    );
    put(
        &s,
        "system_table_schemas",
        "schema:app:notes:1",
        json!({"schema_id": "app:notes:1", "table_id": "app:notes", "version": 1, "arrow_schema": schema.to_string(), "created_at": 1_700_000_000_000_i64, "changes": "[]"}),
    );
    // Row ids `{epoch_ms}_{n}`; G3 wrote `_updated` as RFC 3339 text.
    put(
        &s,
        "user_table:app:notes",
        "alice:1700000000000_0",
        json!({"body": "hello", "_updated": "2023-11-14T22:13:20.000Z", "_deleted": false}),
    );
    put(
        &s,
        "user_table:app:notes",
        "alice:1700000000000_1",
        json!({"body": "gone", "_updated": "2023-11-14T22:13:21.000Z", "_deleted": true}),
    );
    put(
        &s,
        "user_table:app:notes",
        "bob:1700000000000_2",
        json!({"body": "bob's", "_updated": 1_700_000_000_000_i64, "_deleted": false}),
    );
}

#[test]
fn an_original_engine_g3_directory_reads_correctly_once_marked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    write_original_g3(&data.join("rocksdb"));
    let path = data.to_str().expect("utf8");

    let run = kalamctl(&["sql", "--data-dir", path, "SHOW NAMESPACES"]);
    assert_eq!(
        run.code, 6,
        "unmarked directories are refused: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("kalamctl migrate apply"),
        "{}",
        run.stderr
    );

    // What a G3 directory with no Parquet files needs to open: the cold-tier manifest's
    // (empty) column family and the marker (kalamctl migrate writes both).
    {
        let s = Storage::open(&data.join("rocksdb"), OpenMode::ReadWrite).expect("open");
        let sql = kalamdb_sql::KalamSql::new(s);
        sql.ensure_system_tables().expect("system column families");
        sql.write_format_marker().expect("marker");
    }
    let sql = |user: Option<&str>, q: &str| {
        let mut args = vec!["sql", "--data-dir", path, "--format", "json"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.push(q);
        let run = kalamctl(&args);
        assert_eq!(run.code, 0, "{q}: {}", run.stderr);
        run.json()["results"][0]["rows"].clone()
    };
    assert_eq!(
        sql(
            Some("alice"),
            "SELECT body, CAST(_updated AS BIGINT) AS u FROM app.notes"
        ),
        json!([{"body": "hello", "u": 1_700_000_000_000_i64}])
    );
    assert_eq!(
        sql(
            Some("alice"),
            "SELECT body FROM app.notes WHERE _deleted = true"
        ),
        json!([{"body": "gone"}])
    );
    assert_eq!(
        sql(Some("bob"), "SELECT body FROM app.notes"),
        json!([{"body": "bob's"}])
    );
    assert_eq!(
        sql(
            None,
            "SELECT name, CAST(created_at AS BIGINT) AS c, options FROM system.namespaces"
        ),
        json!([{"name": "app", "c": 1_700_000_000_000_i64, "options": "{\"owner\":\"ops\"}"}])
    );
    assert_eq!(
        sql(
            None,
            "SELECT job_id, status, CAST(start_time AS BIGINT) AS s, parameters FROM system.jobs ORDER BY job_id"
        ),
        json!([
            {"job_id": "drop_table:app:old", "status": "completed", "s": 1_700_000_000_000_i64, "parameters": "[\"app\",\"old\"]"},
            {"job_id": "flush-1", "status": "completed", "s": 1_700_000_000_000_i64, "parameters": "[]"}
        ])
    );
    assert_eq!(
        sql(None, "SELECT table_type FROM system.tables"),
        json!([{"table_type": "user"}])
    );
    // Writes go out consistently: milliseconds and lowercase.
    sql(Some("alice"), "INSERT INTO app.notes (body) VALUES ('new')");
    let rows = sql(Some("alice"), "SELECT body FROM app.notes ORDER BY body");
    assert_eq!(rows, json!([{"body": "hello"}, {"body": "new"}]));
}
