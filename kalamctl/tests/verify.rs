//! `kalamctl verify`: one test per finding code. Each injects exactly that fault into a real
//! data directory and expects exactly that code, with the documented exit code; `--repair`
//! fixes the safe classes and nothing else.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Db, files_under};
use kalamdb_store::{OpenMode, Storage};
use serde_json::{Value, json};

/// `app.t` (user table, rows of u1 and u2, flushed, one row soft-deleted and one hot),
/// `app.s` (shared, flushed) and `app.e` (stream).
fn setup() -> Db {
    let db = Db::new();
    db.ok("CREATE NAMESPACE app; \
         CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT NOT NULL); \
         CREATE SHARED TABLE app.s (id BIGINT PRIMARY KEY, v TEXT); \
         CREATE STREAM TABLE app.e (id BIGINT PRIMARY KEY, v TEXT)");
    for u in ["u1", "u2"] {
        db.ok_as(Some(u), "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')");
    }
    db.ok("INSERT INTO app.s VALUES (1, 'x'); INSERT INTO app.e VALUES (1, 'y')");
    db.ok("FLUSH TABLE app.t; FLUSH TABLE app.s");
    db.ok_as(
        Some("u1"),
        "INSERT INTO app.t VALUES (3, 'c'); DELETE FROM app.t WHERE id = 3",
    );
    db
}

/// Runs verify; returns (exit code, the JSON report).
fn verify(db: &Db, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify"];
    args.extend(extra);
    let run = db.cmd(&args);
    assert!(
        run.stderr.is_empty() || !run.stderr.contains("panicked"),
        "{}",
        run.stderr
    );
    (run.code, run.json())
}

fn codes(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_string())
        .collect()
}

/// Verify finds exactly `code` (possibly on several objects) and exits with `exit`.
fn expect_only(db: &Db, code: &str, exit: i32) -> Value {
    let (status, report) = verify(db, &[]);
    assert_eq!(
        codes(&report),
        BTreeSet::from([code.to_string()]),
        "{report:#}"
    );
    assert_eq!(status, exit, "{report:#}");
    for f in report["findings"].as_array().expect("findings") {
        assert!(!f["object"].as_str().unwrap_or("").is_empty(), "{f}");
        assert!(!f["message"].as_str().unwrap_or("").is_empty(), "{f}");
        assert!(!f["fix"].as_str().unwrap_or("").is_empty(), "{f}");
        let severity = if exit == 3 { "error" } else { "warning" };
        assert_eq!(f["severity"], severity, "{f}");
    }
    report
}

/// `--repair` fixes it: it lists the change, reports what is left after it (nothing), and a
/// second verify is clean.
fn expect_repaired(db: &Db, needle: &str) {
    let (status, report) = verify(db, &["--repair"]);
    assert_eq!(status, 0, "{report:#}");
    let repaired = report["repaired"].to_string();
    assert!(repaired.contains(needle), "{report:#}");
    assert_eq!(
        report["findings"],
        json!([]),
        "what is left after the repair: {report:#}"
    );
    assert!(report.get("skipped").is_none(), "{report:#}");
    let (status, report) = verify(db, &[]);
    assert_eq!((status, codes(&report).len()), (0, 0), "{report:#}");
}

/// The first finding concerns `object`.
fn assert_object(report: &Value, object: impl std::fmt::Display) {
    assert_eq!(
        report["findings"][0]["object"].as_str(),
        Some(object.to_string().as_str()),
        "{report:#}"
    );
}

fn storage(db: &Db) -> Storage {
    Storage::open(&db.dir.join("rocksdb"), OpenMode::ReadWrite).expect("open rocksdb")
}

fn put_raw(db: &Db, cf: &str, key: &str, value: &[u8]) {
    storage(db).put(cf, key.as_bytes(), value).expect("put");
}

/// Rewrites one stored JSON record.
fn edit(db: &Db, cf: &str, key: &str, change: impl FnOnce(&mut Value)) {
    let s = storage(db);
    let bytes = s
        .get(cf, key.as_bytes())
        .expect("get")
        .expect("record exists");
    let mut v: Value = serde_json::from_slice(&bytes).expect("json");
    change(&mut v);
    s.put(cf, key.as_bytes(), v.to_string().as_bytes())
        .expect("put");
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .map(|f| dir.join(f))
        .collect()
}

fn t_file(db: &Db) -> PathBuf {
    parquet_files(&db.storage().join("app/t"))
        .into_iter()
        .next()
        .expect("app.t has a Parquet file")
}

fn s_file(db: &Db) -> PathBuf {
    parquet_files(&db.storage().join("app/s"))
        .into_iter()
        .next()
        .expect("app.s has a Parquet file")
}

/// The manifest key of a batch file of `app.{table}` on the default location.
fn batch_key(db: &Db, table: &str, file: &Path) -> String {
    let rel = file
        .strip_prefix(db.storage().join("app").join(table))
        .expect("under the table");
    let (user, name) = match rel.parent().and_then(|p| p.to_str()) {
        Some("") | None => ("", rel.to_str().expect("utf8")),
        Some(user) => (
            user,
            rel.file_name().and_then(|n| n.to_str()).expect("utf8"),
        ),
    };
    format!("batch:app:{table}:{user}:{name}")
}

/// Records `file` (in `app.{table}`'s directory) in the cold-tier manifest as a flush would.
fn record_batch(db: &Db, table: &str, file: &Path) {
    let (written, content) =
        kalamdb_core::cold::manifest::describe(&file.to_path_buf().into(), Some("id"))
            .expect("describe");
    let key = batch_key(db, table, file);
    let rest = key
        .strip_prefix(&format!("batch:app:{table}:"))
        .expect("prefix");
    let (user, name) = rest.split_once(':').expect("user:file");
    let rel = file.strip_prefix(db.storage()).expect("under storage");
    let record = kalamdb_sql::ColdBatchRecord {
        namespace: "app".into(),
        table_name: table.into(),
        user_id: user.into(),
        file_name: name.into(),
        path: rel.to_str().expect("utf8").into(),
        size: written.size,
        row_count: content.row_count,
        min_key: content.min_key,
        max_key: content.max_key,
        schema_version: Some(1),
        job_id: "test".into(),
        sha256: written.sha256,
        created_at: 1,
    };
    put_raw(
        db,
        "system_cold_batches",
        &key,
        &serde_json::to_vec(&record).expect("json"),
    );
}

#[test]
fn a_clean_directory_exits_0_and_counts_rows() {
    let db = setup();
    let (status, report) = verify(&db, &[]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["findings"], json!([]));
    let t = &report["summary"]["table_counts"]["app.t"];
    // Hot: u1's row 3 (soft-deleted), plus RocksDB keeps nothing of the flushed rows.
    assert_eq!(t["hot_rows"], 1, "{report:#}");
    assert_eq!(t["hot_deleted"], 1, "{report:#}");
    assert_eq!(t["users"]["u1"]["deleted"], 1, "{report:#}");
    assert_eq!(t["parquet_files"], 2, "{report:#}");
    assert_eq!(report["summary"]["table_counts"]["app.e"]["hot_rows"], 1);
    assert_eq!(report["summary"]["errors"], 0);
    // Table output: a summary on stderr, nothing on stdout when clean.
    let run = common::kalamctl(&["verify", "--data-dir", db.path()]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("verify: clean"), "{}", run.stderr);
}

#[test]
fn format_marker_missing() {
    let db = setup();
    storage(&db)
        .delete("default", b"kalamdb:format")
        .expect("delete marker");
    expect_only(&db, "format.marker_missing", 3);
}

#[test]
fn format_marker_unreadable() {
    let db = setup();
    put_raw(&db, "default", "kalamdb:format", b"{not json");
    expect_only(&db, "format.marker_unreadable", 3);
}

#[test]
fn catalog_record_invalid() {
    let db = setup();
    put_raw(&db, "system_users", "user:broken", b"[1, 2");
    let report = expect_only(&db, "catalog.record_invalid", 3);
    assert!(
        report["findings"][0]["object"]
            .as_str()
            .unwrap_or("")
            .contains("user:broken"),
        "{report:#}"
    );
}

#[test]
fn catalog_table_without_data() {
    let db = setup();
    storage(&db).drop_cf("shared_table:app:s").expect("drop cf");
    expect_only(&db, "catalog.table_without_data", 3);
}

#[test]
fn catalog_data_without_table() {
    let db = setup();
    let s = storage(&db);
    s.create_cf("shared_table:app:ghost").expect("create cf");
    s.put("shared_table:app:ghost", b"1", br#"{"id":1}"#)
        .expect("put");
    drop(s);
    expect_only(&db, "catalog.data_without_table", 3);
}

#[test]
fn catalog_empty_data_without_table_is_repaired() {
    let db = setup();
    storage(&db)
        .create_cf("user_table:app:ghost")
        .expect("create cf");
    expect_only(&db, "catalog.empty_data_without_table", 1);
    expect_repaired(&db, "user_table:app:ghost");
    assert!(
        !db.column_families()
            .contains(&"user_table:app:ghost".to_string())
    );
}

#[test]
fn catalog_namespace_missing() {
    let db = setup();
    db.ok("CREATE NAMESPACE other; CREATE SHARED TABLE other.x (id BIGINT PRIMARY KEY)");
    storage(&db)
        .delete("system_namespaces", b"ns:other")
        .expect("delete");
    let report = expect_only(&db, "catalog.namespace_missing", 3);
    assert_object(&report, "other.x");
}

#[test]
fn repair_exits_by_what_is_left_after_it() {
    let db = setup();
    db.ok("CREATE NAMESPACE other; CREATE SHARED TABLE other.x (id BIGINT PRIMARY KEY)");
    // A repairable warning next to an error no repair touches.
    edit(&db, "system_namespaces", "ns:app", |v| {
        v["table_count"] = json!(7)
    });
    storage(&db)
        .delete("system_namespaces", b"ns:other")
        .expect("delete");
    let (status, report) = verify(&db, &["--repair"]);
    assert_eq!(status, 3, "the error is still there: {report:#}");
    assert_eq!(
        codes(&report),
        BTreeSet::from(["catalog.namespace_missing".to_string()]),
        "findings are those of the scan after the repair: {report:#}"
    );
    assert!(
        report["repaired"]
            .to_string()
            .contains("table_count 7 -> 3"),
        "{report:#}"
    );
    assert_eq!(report["summary"]["warnings"], 0, "{report:#}");
    assert_eq!(report["summary"]["errors"], 1, "{report:#}");
}

#[test]
fn catalog_table_count_mismatch_is_repaired() {
    let db = setup();
    edit(&db, "system_namespaces", "ns:app", |v| {
        v["table_count"] = json!(7)
    });
    expect_only(&db, "catalog.table_count_mismatch", 1);
    expect_repaired(&db, "table_count 7 -> 3");
    assert_eq!(db.rows("SHOW NAMESPACES")[0]["table_count"], 3);
}

#[test]
fn schema_version_missing() {
    let db = setup();
    edit(&db, "system_tables", "table:app:s", |v| {
        v["schema_version"] = json!(3)
    });
    let report = expect_only(&db, "schema.version_missing", 3);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("2, 3"),
        "{report:#}"
    );
}

#[test]
fn schema_unparseable() {
    let db = setup();
    edit(&db, "system_table_schemas", "schema:app:s:1", |v| {
        v["arrow_schema"] = json!("{\"fields\": 12")
    });
    expect_only(&db, "schema.unparseable", 3);
}

#[test]
fn schema_system_columns() {
    let db = setup();
    edit(&db, "system_table_schemas", "schema:app:s:1", |v| {
        let mut schema: Value =
            serde_json::from_str(v["arrow_schema"].as_str().expect("text")).expect("json");
        let fields = schema["fields"].as_array_mut().expect("fields");
        fields.retain(|f| f["name"] != "_deleted");
        v["arrow_schema"] = json!(schema.to_string());
    });
    expect_only(&db, "schema.system_columns", 3);
}

#[test]
fn location_missing() {
    let db = setup();
    storage(&db)
        .delete("system_storage_locations", b"loc:local")
        .expect("delete");
    let report = expect_only(&db, "location.missing", 3);
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(3));
}

/// A table on object storage whose credentials are not configured (no profile, no
/// `AWS_ACCESS_KEY_ID`): its objects cannot be checked, which is a warning, not a pass.
#[test]
fn location_unreachable() {
    let db = setup();
    db.ok("CREATE SHARED TABLE app.x (id BIGINT PRIMARY KEY)");
    put_raw(
        &db,
        "system_storage_locations",
        "loc:lake",
        br#"{"location_name":"lake","location_type":"s3","path":"s3://bucket/v1","credentials_ref":null,"usage_count":1,"created_at":1,"updated_at":1}"#,
    );
    edit(&db, "system_tables", "table:app:x", |v| {
        v["storage_location"] = json!("lake")
    });
    edit(&db, "system_storage_locations", "loc:local", |v| {
        v["usage_count"] = json!(3)
    });
    let report = expect_only(&db, "location.unreachable", 1);
    assert_eq!(report["findings"][0]["object"], "app.x", "{report:#}");
}

#[test]
fn location_usage_count_mismatch_is_repaired() {
    let db = setup();
    edit(&db, "system_storage_locations", "loc:local", |v| {
        v["usage_count"] = json!(0)
    });
    expect_only(&db, "location.usage_count_mismatch", 1);
    expect_repaired(&db, "usage_count 0 -> 3");
}

#[test]
fn data_key_invalid() {
    let db = setup();
    put_raw(
        &db,
        "user_table:app:t",
        "no-user-separator",
        br#"{"id":9,"body":"x","_updated":1,"_deleted":false}"#,
    );
    expect_only(&db, "data.key_invalid", 3);
}

#[test]
fn data_value_invalid() {
    let db = setup();
    // Not an object; then a column of the wrong type; then a column the schema lacks.
    put_raw(&db, "user_table:app:t", "u1:7", b"[1]");
    put_raw(
        &db,
        "user_table:app:t",
        "u1:8",
        br#"{"id":"eight","body":"x","_updated":1,"_deleted":false}"#,
    );
    put_raw(
        &db,
        "shared_table:app:s",
        "9",
        br#"{"id":9,"colour":"red","_updated":1,"_deleted":false}"#,
    );
    // A NOT NULL column given as null, and left out.
    put_raw(
        &db,
        "user_table:app:t",
        "u2:10",
        br#"{"id":10,"body":null,"_updated":1,"_deleted":false}"#,
    );
    put_raw(
        &db,
        "user_table:app:t",
        "u2:11",
        br#"{"id":11,"_updated":1,"_deleted":false}"#,
    );
    let report = expect_only(&db, "data.value_invalid", 3);
    let findings: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| Some((f["object"].as_str()?, f["message"].as_str()?)))
        .collect();
    assert_eq!(findings.len(), 5, "{report:#}");
    for (object, needle) in [
        ("u1:7", "not a JSON object"),
        ("u1:8", "column 'id': expected BIGINT, got text 'eight'"),
        (
            "shared_table:app:s:9",
            "column 'colour' is not in the table's schema",
        ),
        ("u2:10", "NOT NULL column 'body' has no value"),
        ("u2:11", "NOT NULL column 'body' has no value"),
    ] {
        assert!(
            findings
                .iter()
                .any(|(o, m)| o.ends_with(object) && m.contains(needle)),
            "{object}: {needle}: {findings:?}"
        );
    }
}

#[test]
fn cold_parquet_unreadable() {
    let db = setup();
    let file = t_file(&db);
    std::fs::write(&file, b"PAR1 this is not a parquet file").expect("overwrite");
    // Recorded as it now is (size and SHA-256), so only its footer is at fault.
    let (sha, size) = kalamdb_core::checksum::sha256_file(&file).expect("hash");
    edit(
        &db,
        "system_cold_batches",
        &batch_key(&db, "t", &file),
        |v| {
            v["size"] = json!(size);
            v["sha256"] = json!(sha);
        },
    );
    let report = expect_only(&db, "cold.parquet_unreadable", 3);
    assert_object(&report, file.display().to_string());
}

#[test]
fn cold_parquet_schema_mismatch() {
    let db = setup();
    db.ok("CREATE USER TABLE app.o (id BIGINT PRIMARY KEY, score DOUBLE)");
    db.ok_as(Some("u1"), "INSERT INTO app.o VALUES (1, 0.5)");
    db.ok("FLUSH TABLE app.o");
    let other = parquet_files(&db.storage().join("app/o"))
        .into_iter()
        .next()
        .expect("app.o file");
    let target = t_file(&db).parent().expect("dir").join("batch-1-1.parquet");
    std::fs::copy(&other, &target).expect("copy");
    record_batch(&db, "t", &target);
    let report = expect_only(&db, "cold.parquet_schema_mismatch", 3);
    assert_object(&report, target.display().to_string());
}

#[test]
fn cold_parquet_system_columns() {
    use kalamdb_core::catalog::types::{ColumnDef, ColumnType, arrow_schema};
    let db = setup();
    let columns = [
        ColumnDef {
            name: "id".into(),
            ty: ColumnType::BigInt,
            nullable: false,
        },
        ColumnDef {
            name: "v".into(),
            ty: ColumnType::Text,
            nullable: true,
        },
    ];
    // The shared table's columns, without _updated and _deleted.
    let schema = arrow_schema(&columns, false, &[]);
    let mut row = kalamdb_core::Row::new();
    row.insert("id".into(), json!(5));
    row.insert("v".into(), json!("z"));
    let batch =
        kalamdb_core::cold::arrow_rows::rows_to_batch(&schema, &[&row], &[]).expect("batch");
    // A local file: no upload to record.
    let uploads = kalamdb_core::cold::uploads::Uploads::new(db.storage().join("uploads"));
    let written = kalamdb_core::cold::parquet::write_batch_file(
        &db.storage().join("app/s").into(),
        &batch,
        &uploads.of("app.s"),
    )
    .expect("write");
    record_batch(&db, "s", written.path.as_local().expect("a local file"));
    expect_only(&db, "cold.parquet_system_columns", 3);
}

#[test]
fn cold_parquet_orphan() {
    let db = setup();
    let orphan = db.storage().join("app/gone/u1/batch-1.parquet");
    std::fs::create_dir_all(orphan.parent().expect("dir")).expect("mkdir");
    std::fs::copy(t_file(&db), &orphan).expect("copy");
    let report = expect_only(&db, "cold.parquet_orphan", 1);
    assert_object(&report, orphan.display().to_string());
}

#[test]
fn cold_batch_missing_in_a_user_and_a_shared_table_is_an_error_and_fails_queries() {
    for (table, user, rows) in [("t", Some("u1"), "(2 rows"), ("s", None, "(1 rows")] {
        let db = setup();
        let file = match user {
            Some(u) => parquet_files(&db.storage().join("app/t").join(u))[0].clone(),
            None => s_file(&db),
        };
        std::fs::remove_file(&file).expect("delete the batch file");
        let report = expect_only(&db, "cold.batch_missing", 3);
        assert_object(&report, file.display());
        assert!(
            report["findings"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains(rows),
            "{report:#}"
        );
        // The rows are not silently gone: a query of them fails, naming the file.
        let run = db.sql_as(user, &format!("SELECT * FROM app.{table}"));
        assert_eq!(run.code, 3, "{table}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&file.display().to_string()),
            "{}",
            run.stderr
        );
    }
}

/// A fresh directory and one batch file of each table type that has files.
fn each_table_type() -> Vec<(Db, &'static str, PathBuf)> {
    ["t", "s"]
        .into_iter()
        .map(|table| {
            let db = setup();
            let file = if table == "t" {
                t_file(&db)
            } else {
                s_file(&db)
            };
            (db, table, file)
        })
        .collect()
}

#[test]
fn cold_batch_size_mismatch() {
    for (db, _, file) in each_table_type() {
        let len = std::fs::metadata(&file).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(len / 2))
            .expect("truncate");
        let report = expect_only(&db, "cold.batch_size_mismatch", 3);
        assert_object(&report, file.display());
    }
}

#[test]
fn cold_batch_rows_mismatch() {
    for (db, table, file) in each_table_type() {
        edit(
            &db,
            "system_cold_batches",
            &batch_key(&db, table, &file),
            |v| {
                v["row_count"] = json!(v["row_count"].as_u64().unwrap_or(0) + 1);
            },
        );
        let report = expect_only(&db, "cold.batch_rows_mismatch", 3);
        assert_object(&report, file.display());
    }
}

#[test]
fn cold_batch_checksum_mismatch_unless_fast() {
    for (db, _, file) in each_table_type() {
        let mut bytes = std::fs::read(&file).expect("read");
        // A byte of the first data page (after the 4-byte magic): the footer stays readable.
        bytes[8] ^= 0x55;
        std::fs::write(&file, &bytes).expect("write");
        let report = expect_only(&db, "cold.batch_checksum_mismatch", 3);
        assert_object(&report, file.display());
        // --fast does not read the bytes, as the spec says: the flip goes unseen.
        let (status, report) = verify(&db, &["--fast"]);
        assert_eq!((status, codes(&report).len()), (0, 0), "{report:#}");
    }
}

#[test]
fn cold_batch_unrecorded_after_a_killed_flush_is_repaired() {
    let db = setup();
    db.ok_as(
        Some("u1"),
        "INSERT INTO app.t VALUES (10, 'ten'), (11, 'eleven')",
    );
    let killed = common::kalamctl_env(
        &["sql", "--data-dir", db.path(), "FLUSH TABLE app.t"],
        &[("FAILPOINTS", "flush.file_written=return")],
    );
    assert_eq!(
        killed.code, -1,
        "the flush should die by SIGKILL: {}",
        killed.stderr
    );
    // The file is durable but was never recorded: no query reads it, the rows are still hot.
    // (This read-write open also settles the dead flush's job row.)
    let ids: Vec<i64> = db
        .rows_as(Some("u1"), "SELECT id FROM app.t ORDER BY id")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, [1, 2, 10, 11]);
    let report = expect_only(&db, "cold.batch_unrecorded", 1);
    let file = PathBuf::from(report["findings"][0]["object"].as_str().expect("object"));
    assert!(file.is_file(), "{report:#}");
    expect_repaired(&db, "removed (never recorded");
    assert!(!file.exists());
    assert_eq!(db.rows_as(Some("u1"), "SELECT id FROM app.t").len(), 4);
    // Flushing again records a file for the rows.
    db.ok("FLUSH TABLE app.t");
    let (status, report) = verify(&db, &[]);
    assert_eq!((status, codes(&report).len()), (0, 0), "{report:#}");
}

#[test]
fn an_unrecorded_file_with_rows_found_nowhere_else_is_never_removed() {
    let db = setup();
    // A copy of a flushed file: its rows are in no hot tier, so removing it could lose them.
    let copy = t_file(&db).parent().expect("dir").join("batch-9.parquet");
    std::fs::copy(t_file(&db), &copy).expect("copy");
    expect_only(&db, "cold.batch_unrecorded", 1);
    let (status, report) = verify(&db, &["--repair"]);
    assert_eq!(status, 1, "{report:#}");
    assert!(
        report["skipped"].to_string().contains("batch-9.parquet"),
        "{report:#}"
    );
    assert!(copy.is_file());
}

#[test]
fn a_file_dropped_into_a_storage_location_outside_d_is_an_orphan() {
    let db = setup();
    let outside = tempfile::tempdir().expect("tempdir");
    let base = outside.path().join("cold");
    db.ok(&format!(
        "CREATE SHARED TABLE app.far (id BIGINT PRIMARY KEY) WITH (STORAGE = '{}/${{namespace}}/${{table_name}}')",
        base.display()
    ));
    db.ok("INSERT INTO app.far VALUES (1); FLUSH TABLE app.far");
    let loc = base.join("stray/batch-1.parquet");
    std::fs::create_dir_all(loc.parent().expect("dir")).expect("mkdir");
    std::fs::copy(s_file(&db), &loc).expect("copy");
    put_raw(
        &db,
        "system_storage_locations",
        "loc:far",
        json!({"location_name": "far", "location_type": "filesystem", "path": base.display().to_string(), "usage_count": 0, "created_at": 1, "updated_at": 1}).to_string().as_bytes(),
    );
    let report = expect_only(&db, "cold.parquet_orphan", 1);
    assert_object(&report, loc.display());
}

#[test]
fn cold_stream_parquet() {
    let db = setup();
    let dir = db.storage().join("app/e");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(t_file(&db), dir.join("batch-1.parquet")).expect("copy");
    expect_only(&db, "cold.stream_parquet", 3);
}

#[test]
fn rocksdb_checksum_mismatch_from_a_flipped_byte() {
    let db = setup();
    storage(&db).flush_memtables().expect("flush");
    // Listed from a read-only open, which never compacts: the file stays the live one.
    let s = Storage::open(&db.dir.join("rocksdb"), OpenMode::ReadOnly).expect("open");
    let sst = s
        .live_files()
        .expect("live files")
        .into_iter()
        .find(|f| f.column_family == "user_table:app:t")
        .expect("an SST of app.t");
    drop(s);
    let path = db.dir.join("rocksdb").join(&sst.name);
    let mut bytes = std::fs::read(&path).expect("read sst");
    // The first data block starts at offset 0; flip a byte inside it.
    bytes[20] ^= 0xFF;
    std::fs::write(&path, bytes).expect("write sst");
    let report = expect_only(&db, "rocksdb.checksum_mismatch", 3);
    assert_object(&report, "user_table:app:t");
}

#[test]
fn state_abandoned_job_is_repaired() {
    let db = setup();
    // A copy of a real job row, recorded running by a process that no longer exists.
    let flush = db.rows("SELECT job_id FROM system.jobs WHERE job_type = 'flush'");
    let id = flush[0]["job_id"].as_str().expect("id").to_string();
    let s = storage(&db);
    let bytes = s
        .get("system_jobs", format!("job:{id}").as_bytes())
        .expect("get")
        .expect("job row");
    let mut job: Value = serde_json::from_slice(&bytes).expect("json");
    job["job_id"] = json!("flush-abandoned");
    job["status"] = json!("running");
    job["end_time"] = Value::Null;
    job["result"] = Value::Null;
    job["owner"]["pid"] = json!(4_000_000);
    s.put(
        "system_jobs",
        b"job:flush-abandoned",
        job.to_string().as_bytes(),
    )
    .expect("put");
    drop(s);
    expect_only(&db, "state.abandoned_job", 1);
    expect_repaired(&db, "job flush-abandoned: marked failed");
}

#[test]
fn state_stale_live_query_is_repaired() {
    let db = setup();
    let lq = json!({
        "live_id": "lq-1", "connection_id": "c1", "table_name": "app.t", "query_id": "q1",
        "user_id": "u1", "query": "SELECT * FROM app.t", "options": "",
        "created_at": 1_700_000_000_000_i64, "updated_at": 1_700_000_000_000_i64,
        "changes": 0, "node": "n1"
    });
    put_raw(
        &db,
        "system_live_queries",
        "lq:lq-1",
        lq.to_string().as_bytes(),
    );
    expect_only(&db, "state.stale_live_query", 1);
    expect_repaired(&db, "live query lq-1: deleted");
}

/// The record a flush keeps of its open multipart upload (`D/uploads/`), left by a process
/// killed mid-upload (the real kill: `kalamd/tests/object_storage.rs`).
#[test]
fn state_upload_open_is_named_while_no_process_runs() {
    let db = setup();
    let uploads = db.dir.join("uploads");
    std::fs::create_dir_all(&uploads).expect("mkdir");
    let record = json!({
        "table": "app.t", "bucket": "lake", "profile": "p",
        "key": "app/t/batch-1.parquet", "upload": "upload-1"
    });
    std::fs::write(uploads.join("0123.json"), record.to_string()).expect("record");
    // A record whose writer died before renaming it into place is no record.
    std::fs::write(uploads.join(".0456.json.77.tmp"), "{").expect("partial");
    let report = expect_only(&db, "state.upload_open", 1);
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["object"], "s3://lake/app/t/batch-1.parquet");
}

#[test]
fn every_documented_code_has_a_test_and_a_spec_entry() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/verify.md"))
        .expect("specs/verify.md");
    let tests = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify.rs"))
        .expect("this file");
    for code in kalamdb_verify::Code::ALL {
        let name = code.as_str();
        assert!(
            spec.contains(&format!("`{name}`")),
            "{name} is not in specs/verify.md"
        );
        assert!(tests.contains(&format!("\"{name}\"")), "{name} has no test");
    }
}

#[test]
fn verify_changes_nothing_and_a_bad_path_exits_2() {
    let db = setup();
    let run = common::kalamctl(&["verify", "--data-dir", "/nonexistent/kalamdb"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    // Read-only verify changes nothing on disk.
    edit(&db, "system_namespaces", "ns:app", |v| {
        v["table_count"] = json!(7)
    });
    let before = common::snapshot(&db.dir.join("storage"));
    let (status, _) = verify(&db, &[]);
    assert_eq!(status, 1);
    assert_eq!(common::snapshot(&db.dir.join("storage")), before);
    assert_eq!(db.rows("SHOW NAMESPACES")[0]["table_count"], 7);
}
