//! Test support: a loopback S3 server ([`s3`]), and legacy KalamDB data directories, G1, G2
//! and the original engine's G3, written
//! exactly as `specs/legacy-layouts.md` describes them (by default in the original layout:
//! the directory is the RocksDB directory itself): the same column families,
//! key prefixes, JSON spellings and timestamp units, including the original engine's known
//! defects. Not a user command.
//!
//! Every generation holds the same data, so one [`EXPECTED`] describes what a migration must
//! produce from any of them:
//! - users (one with a UUID id, one without an email) and two storage locations;
//! - three namespaces;
//! - a user table with two schema versions (the newer adds a column that older rows lack),
//!   two shared tables and a stream table, with rows from several users and soft-deleted rows;
//! - a dropped table the original drop left behind (its `system.tables` row, its emptied
//!   column family, a Parquet file under the resolved `${user_id}` path), and in G2/G3 a
//!   `system.tables` row whose column family is gone;
//! - jobs in every state the original engine wrote (one left `running`) and live queries.

pub mod s3;
pub mod tree;

/// `len` lowercase letters from a xorshift generator (advancing `seed`, which must not be
/// 0): text that compresses little, to make files past a given size.
pub fn noise_text(seed: &mut u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            char::from(b'a' + (*seed % 26) as u8)
        })
        .collect()
}

use std::path::Path;

use kalamdb_store::{OpenMode, Storage};
use serde_json::{Value, json};

/// A legacy generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    G1,
    G2,
    G3,
}

impl Generation {
    pub fn parse(s: &str) -> Option<Generation> {
        match s {
            "g1" => Some(Generation::G1),
            "g2" => Some(Generation::G2),
            "g3" => Some(Generation::G3),
            _ => None,
        }
    }
}

/// What a migrated fixture must hold, whatever its generation.
pub struct Expected {
    pub namespaces: &'static [&'static str],
    /// `(namespace.table, type)`.
    pub tables: &'static [(&'static str, &'static str)],
    pub usernames: &'static [&'static str],
    /// Visible (not soft-deleted) rows: `(namespace.table, user id or "" for all, count)`.
    pub rows: &'static [(&'static str, &'static str, u64)],
    pub jobs: usize,
    /// Jobs the original engine left `running`.
    pub running_jobs: usize,
    pub live_queries: usize,
    /// Schema versions of app.notes where the fixture writes them (G1, G3).
    pub notes_versions: u32,
    /// Columns the newest app.notes schema has in G1 and G3 (G2 infers them from rows).
    pub notes_columns: &'static [&'static str],
}

pub const ALICE: &str = "u_alice";
pub const BOB: &str = "3f1c9a0e-5b7d-4e0a-9a51-2f9c8d7e6b10";

pub const EXPECTED: Expected = Expected {
    namespaces: &["analytics", "app", "ops"],
    tables: &[
        ("analytics.events", "stream"),
        ("app.notes", "user"),
        ("app.settings", "shared"),
        ("ops.audit", "shared"),
    ],
    usernames: &["alice", "bob", "carol"],
    rows: &[
        ("app.notes", ALICE, 3),
        ("app.notes", BOB, 2),
        ("app.settings", "", 2),
        ("ops.audit", "", 2),
        ("analytics.events", "", 4),
    ],
    jobs: 5,
    running_jobs: 1,
    live_queries: 2,
    notes_versions: 2,
    notes_columns: &["id", "title", "pinned", "_updated", "_deleted"],
};

/// The catalog column families of G2 (and G3).
pub const G2_CATALOG: [&str; 7] = [
    "system_users",
    "system_live_queries",
    "system_storage_locations",
    "system_jobs",
    "system_namespaces",
    "system_tables",
    "system_table_schemas",
];

/// 2023-11-14T22:13:20Z, the fixtures' clock.
const T: i64 = 1_700_000_000_000;

fn secs(ms: i64) -> i64 {
    ms / 1000
}

fn rfc3339(ms: i64) -> String {
    // Fixed instants only: T + a few minutes, so a small formatter is enough.
    let s = secs(ms) - secs(T);
    let (m, s) = (s / 60, s % 60);
    format!("2023-11-14T22:{:02}:{:02}Z", 13 + m, 20 + s)
}

/// Writes a `generation` directory at `dir` as the original engine laid it out: `dir` is the
/// RocksDB directory itself (with G1's `conf/` inside it), and the `local` location's
/// relative path `storage` is `dir/storage`.
pub fn write(generation: Generation, dir: &Path) -> Result<(), String> {
    write_into(generation, dir, dir)
}

/// Writes a `generation` directory already nested as a KalamDB data directory:
/// `dir/rocksdb` and `dir/storage` (how an operator who moved the files by hand has it).
pub fn write_nested(generation: Generation, dir: &Path) -> Result<(), String> {
    write_into(generation, dir, &dir.join("rocksdb"))
}

fn write_into(generation: Generation, dir: &Path, db_dir: &Path) -> Result<(), String> {
    let db_dir = db_dir.to_path_buf();
    let storage = Storage::open(&db_dir, OpenMode::Create).map_err(|e| e.to_string())?;
    let w = Writer { storage: &storage };
    match generation {
        Generation::G1 => g1(&w, &db_dir)?,
        Generation::G2 => g2(&w)?,
        Generation::G3 => g3(&w)?,
    }
    data(&w, generation)?;
    // The drop left a Parquet file under the resolved ${user_id} path.
    let leftover = dir.join("storage/app/old_drafts").join(ALICE);
    std::fs::create_dir_all(&leftover).map_err(|e| e.to_string())?;
    std::fs::write(
        leftover.join(format!("batch-{}.parquet", T - 50_000)),
        b"PAR1 left by drop",
    )
    .map_err(|e| e.to_string())?;
    storage.flush_memtables().map_err(|e| e.to_string())?;
    Ok(())
}

struct Writer<'a> {
    storage: &'a Storage,
}

impl Writer<'_> {
    fn put(&self, cf: &str, key: &str, value: &Value) -> Result<(), String> {
        self.put_raw(cf, key, value.to_string().as_bytes())
    }
    fn put_raw(&self, cf: &str, key: &str, value: &[u8]) -> Result<(), String> {
        self.storage.create_cf(cf).map_err(|e| e.to_string())?;
        self.storage
            .put(cf, key.as_bytes(), value)
            .map_err(|e| e.to_string())
    }
    fn cf(&self, cf: &str) -> Result<(), String> {
        self.storage.create_cf(cf).map_err(|e| e.to_string())
    }
}

/// CatalogStore records (G1 and G2 share them): `(key, value)` per entity.
fn users() -> Vec<(String, Value)> {
    vec![
        (
            ALICE.into(),
            json!({"user_id": ALICE, "username": "alice", "email": "alice@example.com", "created_at": T, "updated_at": T}),
        ),
        (
            BOB.into(),
            json!({"user_id": BOB, "username": "bob", "email": "bob@example.com", "created_at": T + 1000, "updated_at": T + 1000}),
        ),
        (
            "u_carol".into(),
            json!({"user_id": "u_carol", "username": "carol", "email": null, "created_at": T + 2000, "updated_at": T + 2000}),
        ),
    ]
}

fn live_queries() -> Vec<(String, Value)> {
    let a = format!("{ALICE}-conn1-app.notes-q1");
    let b = format!("{BOB}-conn7-notes-q2");
    vec![
        (
            format!("live_query:{a}"),
            json!({"live_id": a, "connection_id": "conn1", "table_name": "app.notes", "query_id": "q1", "user_id": ALICE, "query": "SELECT * FROM app.notes", "options": "{\"last_rows\":50}", "created_at": T + 5000, "updated_at": T + 6000, "changes": 3, "node": "node-1"}),
        ),
        // Some helpers wrote a bare id.
        (
            b.clone(),
            json!({"live_id": b, "connection_id": "conn7", "table_name": "notes", "query_id": "q2", "user_id": BOB, "query": "SELECT * FROM notes", "options": null, "created_at": T + 7000, "updated_at": T + 7000, "changes": 0, "node": "node-1"}),
        ),
    ]
}

fn locations() -> Vec<(String, Value)> {
    vec![
        (
            "location:local".into(),
            json!({"location_name": "local", "location_type": "Filesystem", "path": "storage", "credentials_ref": null, "usage_count": 0, "created_at": T, "updated_at": T}),
        ),
        (
            "location:archive".into(),
            json!({"location_name": "archive", "location_type": "S3", "path": "s3://kalam-archive/${user_id}", "credentials_ref": "aws-prod", "usage_count": 7, "created_at": T, "updated_at": T + 100}),
        ),
    ]
}

fn jobs() -> Vec<(String, Value)> {
    vec![
        (
            "job:flush-1".into(),
            json!({"job_id": "flush-1", "job_type": "flush", "table_name": "app.notes", "status": "completed", "start_time": T + 10_000, "end_time": T + 10_500, "parameters": "[\"app\",\"notes\"]", "result": "{\"rows\":4}", "trace": null, "memory_used_mb": 12.5, "cpu_used_percent": 3.0, "node_id": "node-1", "error_message": null}),
        ),
        (
            "job:flush-2".into(),
            json!({"job_id": "flush-2", "job_type": "flush", "table_name": "ops.audit", "status": "failed", "start_time": T + 11_000, "end_time": T + 11_200, "parameters": null, "result": "", "trace": "io error", "memory_used_mb": null, "cpu_used_percent": null, "node_id": "node-1", "error_message": "disk full"}),
        ),
        // Left running by a crash.
        (
            "job:flush-3".into(),
            json!({"job_id": "flush-3", "job_type": "flush", "table_name": null, "status": "running", "start_time": T + 12_000, "end_time": null, "parameters": "[]", "result": "", "trace": null, "memory_used_mb": null, "cpu_used_percent": null, "node_id": "node-1", "error_message": null}),
        ),
        // Drop jobs: seconds, fixed id.
        (
            "job:drop_table:app:old_drafts".into(),
            json!({"job_id": "drop_table:app:old_drafts", "job_type": "drop_table", "table_name": "app.old_drafts", "status": "completed", "start_time": secs(T + 20_000), "end_time": secs(T + 21_000), "parameters": "[\"app\",\"old_drafts\"]", "result": "", "trace": null, "memory_used_mb": null, "cpu_used_percent": null, "node_id": "node-1", "error_message": null}),
        ),
        (
            "job:drop_table:ops:gone".into(),
            json!({"job_id": "drop_table:ops:gone", "job_type": "drop_table", "table_name": "ops.gone", "status": "completed", "start_time": secs(T + 22_000), "end_time": secs(T + 22_500), "parameters": "[\"ops\",\"gone\"]", "result": "", "trace": null, "memory_used_mb": null, "cpu_used_percent": null, "node_id": "node-1", "error_message": null}),
        ),
    ]
}

fn field(name: &str, data_type: &str, nullable: bool) -> Value {
    json!({"name": name, "data_type": data_type, "nullable": nullable})
}

/// `(namespace, table, kind, versions)`: every schema version's JSON.
fn schemas() -> Vec<(&'static str, &'static str, &'static str, Vec<Value>)> {
    let ms = "Timestamp(Millisecond, None)";
    let us = "Timestamp(Microsecond, None)";
    let notes_v1 = vec![
        field("id", "Int64", false),
        field("title", "Utf8", true),
        field("_updated", ms, false),
        field("_deleted", "Boolean", false),
    ];
    let mut notes_v2 = notes_v1.clone();
    notes_v2.insert(2, field("pinned", "Boolean", true));
    vec![
        (
            "app",
            "notes",
            "User",
            vec![
                json!({"fields": notes_v1, "options": {"table_type": "User", "primary_key": "id"}}),
                json!({"fields": notes_v2, "options": {"table_type": "User", "primary_key": "id", "flush_policy": {"type": "row_limit", "row_limit": 1000}}}),
            ],
        ),
        (
            "app",
            "settings",
            "Shared",
            vec![
                json!({"fields": [field("key", "Utf8", false), field("value", "Utf8", true), field("_updated", us, false), field("_deleted", "Boolean", false)], "options": {"table_type": "Shared", "primary_key": "key"}}),
            ],
        ),
        (
            "ops",
            "audit",
            "Shared",
            vec![
                json!({"fields": [field("action", "Utf8", true), field("_updated", us, false), field("_deleted", "Boolean", false)], "options": {"table_type": "Shared"}}),
            ],
        ),
        (
            "analytics",
            "events",
            "Stream",
            vec![
                json!({"fields": [field("kind", "Utf8", true), field("amount", "Float64", true)], "options": {"table_type": "Stream"}}),
            ],
        ),
    ]
}

fn g1(w: &Writer<'_>, db_dir: &Path) -> Result<(), String> {
    for (k, v) in users() {
        w.put("system_table:users", &k, &v)?;
    }
    for (k, v) in live_queries() {
        w.put("system_table:live_queries", &k, &v)?;
    }
    // The archive location lives only in the JSON file.
    for (k, v) in locations().into_iter().take(1) {
        w.put("system_table:storage_locations", &k, &v)?;
    }
    for (k, v) in jobs() {
        w.put("system_table:jobs", &k, &v)?;
    }
    let conf = db_dir.join("conf");
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    let write = |rel: &str, bytes: &[u8]| -> Result<(), String> {
        let path = conf.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, bytes).map_err(|e| e.to_string())
    };
    let mut namespaces = serde_json::Map::new();
    for (i, ns) in ["analytics", "app", "ops"].iter().enumerate() {
        namespaces.insert(ns.to_string(), json!({"name": ns, "created_at": rfc3339(T + i as i64 * 1000), "options": {"owner": "team"}, "table_count": 9}));
    }
    write("namespaces.json", &pretty(&Value::Object(namespaces)))?;
    let mut locs = serde_json::Map::new();
    for (_, v) in locations() {
        let name = v["location_name"].as_str().unwrap_or_default().to_string();
        locs.insert(name, json!({"location_name": v["location_name"], "location_type": v["location_type"], "path": v["path"], "credentials_ref": v["credentials_ref"], "usage_count": v["usage_count"]}));
    }
    write("storage_locations.json", &pretty(&Value::Object(locs)))?;
    for (ns, table, _, versions) in schemas() {
        let base = format!("{ns}/schemas/{table}");
        let mut history = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            let n = i + 1;
            write(&format!("{base}/schema_v{n}.json"), &pretty(v))?;
            history.push(json!({"version": n, "created_at": rfc3339(T + 3000 + i as i64 * 60_000), "description": if n == 1 { "created".to_string() } else { "added column pinned".to_string() }}));
        }
        let newest = versions.last().cloned().unwrap_or(Value::Null);
        write(&format!("{base}/current.json"), &pretty(&newest))?;
        write(
            &format!("{base}/manifest.json"),
            &pretty(
                &json!({"current_version": versions.len(), "version_count": versions.len(), "current_version_created_at": rfc3339(T + 3000), "version_history": history}),
            ),
        )?;
    }
    Ok(())
}

fn g2(w: &Writer<'_>) -> Result<(), String> {
    for (k, v) in users() {
        w.put("system_users", &k, &v)?;
    }
    for (k, v) in live_queries() {
        w.put("system_live_queries", &k, &v)?;
    }
    for (k, v) in locations() {
        w.put("system_storage_locations", &k, &v)?;
    }
    for (k, v) in jobs() {
        w.put("system_jobs", &k, &v)?;
    }
    for (i, ns) in ["analytics", "app", "ops"].iter().enumerate() {
        // Seconds, options as text, table_count reset to 0 by every update.
        w.put("system_namespaces", &format!("ns:{ns}"), &json!({"namespace_id": ns, "name": ns, "created_at": secs(T) + i as i64, "options": "{}", "table_count": 0}))?;
    }
    // Production G2 wrote no table rows; the lower-level adapter wrote these (capitalised
    // type, seconds, flush policy as text, a path template).
    w.put("system_tables", "table:app:old_drafts", &json!({"table_id": "app:old_drafts", "table_name": "old_drafts", "namespace": "app", "table_type": "User", "created_at": secs(T + 4000), "storage_location": "storage/${namespace}/${table_name}/${user_id}", "flush_policy": "{\"type\":\"row_limit\",\"row_limit\":100}", "schema_version": 1, "deleted_retention_hours": null}))?;
    w.put("system_tables", "table:ops:gone", &json!({"table_id": "ops:gone", "table_name": "gone", "namespace": "ops", "table_type": "Shared", "created_at": secs(T + 4000), "storage_location": "storage/ops/gone", "flush_policy": "", "schema_version": 1, "deleted_retention_hours": 24}))?;
    w.cf("system_table_schemas")?;
    w.cf("user_table_counters")?;
    Ok(())
}

fn g3(w: &Writer<'_>) -> Result<(), String> {
    for (_, v) in users() {
        let username = v["username"].as_str().unwrap_or_default();
        w.put("system_users", &format!("user:{username}"), &json!({"user_id": v["user_id"], "username": username, "email": v["email"].as_str().unwrap_or(""), "created_at": v["created_at"]}))?;
    }
    for (_, mut v) in live_queries() {
        let id = v["live_id"].as_str().unwrap_or_default().to_string();
        if v["options"].is_null() {
            v["options"] = json!("");
        }
        w.put("system_live_queries", &format!("lq:{id}"), &v)?;
    }
    for (k, mut v) in locations() {
        let name = k.trim_start_matches("location:");
        v["location_type"] = json!(
            v["location_type"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
        );
        // G3 storage locations are in seconds.
        v["created_at"] = json!(secs(T));
        v["updated_at"] = json!(secs(T + 100));
        w.put("system_storage_locations", &format!("loc:{name}"), &v)?;
    }
    for (k, mut v) in jobs() {
        if v["table_name"].is_null() {
            v["table_name"] = json!("");
        }
        let params: Value = v["parameters"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(json!([]));
        v["parameters"] = params;
        w.put("system_jobs", &k, &v)?;
    }
    for (i, ns) in ["analytics", "app", "ops"].iter().enumerate() {
        w.put("system_namespaces", &format!("ns:{ns}"), &json!({"namespace_id": ns, "name": ns, "created_at": secs(T) + i as i64, "options": "{}", "table_count": 1}))?;
    }
    for (ns, table, kind, versions) in schemas() {
        let id = format!("{ns}:{table}");
        w.put("system_tables", &format!("table:{id}"), &json!({"table_id": id, "table_name": table, "namespace": ns, "table_type": kind.to_lowercase(), "created_at": T + 3000, "storage_location": "local", "flush_policy": "", "schema_version": versions.len(), "deleted_retention_hours": null}))?;
        for (i, v) in versions.iter().enumerate() {
            let n = i + 1;
            w.put("system_table_schemas", &format!("schema:{id}:{n}"), &json!({"schema_id": format!("{id}:{n}"), "table_id": id, "version": n, "arrow_schema": v.to_string(), "created_at": T + 3000 + i as i64 * 60_000, "changes": if n == 1 { "[\"created\"]" } else { "[\"added column pinned\"]" }}))?;
        }
    }
    // Rows that outlived their dropped tables.
    w.put("system_tables", "table:app:old_drafts", &json!({"table_id": "app:old_drafts", "table_name": "old_drafts", "namespace": "app", "table_type": "user", "created_at": T + 4000, "storage_location": "local", "flush_policy": "", "schema_version": 1, "deleted_retention_hours": null}))?;
    w.put("system_table_schemas", "schema:app:old_drafts:1", &json!({"schema_id": "app:old_drafts:1", "table_id": "app:old_drafts", "version": 1, "arrow_schema": json!({"fields": [field("body", "Utf8", true)], "options": {}}).to_string(), "created_at": T + 4000, "changes": "[\"created\"]"}))?;
    w.put("system_tables", "table:ops:gone", &json!({"table_id": "ops:gone", "table_name": "gone", "namespace": "ops", "table_type": "shared", "created_at": T + 4000, "storage_location": "local", "flush_policy": "", "schema_version": 1, "deleted_retention_hours": 24}))?;
    w.cf("user_table_counters")?;
    Ok(())
}

/// The data column families, the same in every generation except `_updated`'s spelling.
fn data(w: &Writer<'_>, generation: Generation) -> Result<(), String> {
    let updated = |ms: i64| -> Value {
        if generation == Generation::G3 {
            json!(rfc3339(ms))
        } else {
            json!(ms)
        }
    };
    let notes = "user_table:app:notes";
    let rows = [
        (
            ALICE,
            1,
            json!({"id": 1, "title": "groceries", "_updated": updated(T + 30_000), "_deleted": false}),
        ),
        (
            ALICE,
            2,
            json!({"id": 2, "title": "call mom", "_updated": updated(T + 31_000), "_deleted": false}),
        ),
        (
            ALICE,
            3,
            json!({"id": 3, "pinned": true, "title": "plan trip", "_updated": updated(T + 90_000), "_deleted": false}),
        ),
        (
            ALICE,
            4,
            json!({"id": 4, "pinned": false, "title": "old idea", "_updated": updated(T + 91_000), "_deleted": true}),
        ),
        (
            BOB,
            5,
            json!({"id": 5, "title": "draft: talk", "_updated": updated(T + 32_000), "_deleted": false}),
        ),
        (
            BOB,
            6,
            json!({"id": 6, "pinned": true, "title": "slides", "_updated": updated(T + 92_000), "_deleted": false}),
        ),
    ];
    for (user, n, row) in rows {
        w.put(notes, &format!("{user}:{}_{n}", T + 30_000 + n), &row)?;
    }
    // Shared rows written by the later store code carry _updated as RFC 3339 text.
    let settings = "shared_table:app:settings";
    w.put(settings, "theme", &json!({"_deleted": false, "_updated": rfc3339(T + 40_000), "key": "theme", "value": "dark"}))?;
    w.put(
        settings,
        "lang",
        &json!({"_deleted": false, "_updated": rfc3339(T + 41_000), "key": "lang", "value": "en"}),
    )?;
    w.put(
        settings,
        "beta",
        &json!({"_deleted": true, "_updated": rfc3339(T + 42_000), "key": "beta", "value": "on"}),
    )?;
    let audit = "shared_table:ops:audit";
    for (n, (action, deleted)) in [("login", false), ("logout", false), ("sudo", true)]
        .iter()
        .enumerate()
    {
        w.put(audit, &format!("{}_{n}", T + 50_000), &json!({"_deleted": deleted, "_updated": updated(T + 50_000 + n as i64), "action": action}))?;
    }
    // Stream rows have no system columns; amounts mix integers and floats.
    let events = "stream_table:analytics:events";
    for (n, raw) in [
        r#"{"amount":2,"kind":"click"}"#,
        r#"{"amount":1.5,"kind":"view"}"#,
        r#"{"amount":3,"kind":"click"}"#,
        r#"{"amount":0.25,"kind":"buy"}"#,
    ]
    .iter()
    .enumerate()
    {
        let ts = T + 60_000 + n as i64;
        w.put_raw(events, &format!("{ts}:{ts}_{n}"), raw.as_bytes())?;
    }
    // The dropped table's column family, emptied and never dropped.
    w.cf("user_table:app:old_drafts")?;
    Ok(())
}

/// A large G2 directory for benchmarks: `tables` tables of metadata (adapter-written
/// `system_tables` rows and one schema each) in 100 namespaces, the first `data_tables` of
/// them with a data column family; `rows` user-table rows spread over those; 1,000 users and
/// 1,000 jobs. Returns the number of catalog keys written.
pub fn write_g2_bulk(
    dir: &Path,
    tables: usize,
    data_tables: usize,
    rows: usize,
) -> Result<usize, String> {
    let table_name = |i: usize| (format!("ns{:03}", i % 100), format!("t{i:06}"));
    let data_cfs: Vec<String> = (0..data_tables.min(tables))
        .map(|i| {
            let (ns, t) = table_name(i);
            format!("user_table:{ns}:{t}")
        })
        .collect();
    let mut cfs: Vec<String> = G2_CATALOG.iter().map(|s| s.to_string()).collect();
    cfs.push("user_table_counters".to_string());
    cfs.extend(data_cfs.iter().cloned());
    let storage = Storage::create_with(&dir.join("rocksdb"), &cfs).map_err(|e| e.to_string())?;
    let err = |e: kalamdb_store::StoreError| e.to_string();
    let mut keys = 0;
    let mut batch = kalamdb_store::Batch::new();
    let flush = |batch: &mut kalamdb_store::Batch, force: bool| -> Result<(), String> {
        if force || batch.len() >= 10_000 {
            storage.write(std::mem::take(batch)).map_err(err)?;
        }
        Ok(())
    };
    for (k, v) in locations() {
        batch.put("system_storage_locations", k.as_bytes(), v.to_string());
        keys += 1;
    }
    for i in 0..1000 {
        let id = format!("u{i:04}");
        batch.put("system_users", id.as_bytes(), json!({"user_id": id, "username": format!("user{i}"), "email": null, "created_at": T, "updated_at": T}).to_string());
        batch.put("system_jobs", format!("job:flush-{i}").as_bytes(), json!({"job_id": format!("flush-{i}"), "job_type": "flush", "table_name": null, "status": "completed", "start_time": T + i, "end_time": T + i + 5, "parameters": "[]", "result": "", "trace": null, "memory_used_mb": null, "cpu_used_percent": null, "node_id": "n1", "error_message": null}).to_string());
        keys += 2;
        flush(&mut batch, false)?;
    }
    for n in 0..100 {
        let ns = format!("ns{n:03}");
        batch.put("system_namespaces", format!("ns:{ns}").as_bytes(), json!({"namespace_id": ns, "name": ns, "created_at": secs(T), "options": "{}", "table_count": 0}).to_string());
        keys += 1;
    }
    let schema = json!({"fields": [field("body", "Utf8", true), field("_updated", "Timestamp(Millisecond, None)", false), field("_deleted", "Boolean", false)], "options": {"table_type": "User"}}).to_string();
    for i in 0..tables {
        let (ns, t) = table_name(i);
        let id = format!("{ns}:{t}");
        batch.put("system_tables", format!("table:{id}").as_bytes(), json!({"table_id": id, "table_name": t, "namespace": ns, "table_type": "User", "created_at": secs(T), "storage_location": "local", "flush_policy": "{\"type\":\"row_limit\",\"row_limit\":10000}", "schema_version": 1, "deleted_retention_hours": null}).to_string());
        batch.put("system_table_schemas", format!("schema:{id}:1").as_bytes(), json!({"schema_id": format!("{id}:1"), "table_id": id, "version": 1, "arrow_schema": schema, "created_at": T, "changes": "[\"created\"]"}).to_string());
        keys += 2;
        flush(&mut batch, false)?;
    }
    if !data_cfs.is_empty() {
        for r in 0..rows {
            let cf = &data_cfs[r % data_cfs.len()];
            let key = format!("u{:04}:{}_{r}", r % 10, T + r as i64);
            batch.put(cf, key.as_bytes(), json!({"_deleted": false, "_updated": T + r as i64, "body": format!("row {r} of a benchmark table")}).to_string());
            flush(&mut batch, false)?;
        }
    }
    flush(&mut batch, true)?;
    storage.flush_memtables().map_err(err)?;
    Ok(keys)
}
