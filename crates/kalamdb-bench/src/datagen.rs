//! The data generator: N namespaces, tables, users and rows, written straight into the store.

use kalamdb_core::{Engine, Row, Session};
use serde_json::Value;

/// The shape of a generated dataset.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub namespaces: usize,
    pub tables_per_namespace: usize,
    pub users: usize,
    /// Rows per table, spread evenly over the users.
    pub rows_per_table: usize,
}

/// The name of the i-th namespace and table.
pub fn namespace(i: usize) -> String {
    format!("ns{i}")
}
pub fn table(i: usize) -> String {
    format!("t{i}")
}
pub fn user(i: usize) -> String {
    format!("user{i:04}")
}

pub const COLUMNS: &str = "id BIGINT PRIMARY KEY, name TEXT, score DOUBLE, active BOOLEAN";

/// One generated row with primary key `id`.
pub fn row(id: u64) -> Row {
    let mut r = Row::new();
    r.insert("id".into(), Value::from(id));
    r.insert("name".into(), Value::from(format!("name-{id}")));
    r.insert("score".into(), Value::from((id % 1000) as f64 / 10.0));
    r.insert("active".into(), Value::Bool(!id.is_multiple_of(3)));
    r
}

/// [`row`] plus a `payload` column of `bytes` pseudo-random letters and digits, which
/// Parquet cannot compress much: for tables of a given size on disk.
pub fn wide_row(id: u64, bytes: usize) -> Row {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut r = row(id);
    if bytes > 0 {
        let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let text: String = (0..bytes)
            .map(|_| {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
            })
            .collect();
        r.insert("payload".into(), Value::from(text));
    }
    r
}

/// A SQL literal row matching [`row`].
pub fn sql_row(id: u64) -> String {
    format!(
        "({id}, 'name-{id}', {:.1}, {})",
        (id % 1000) as f64 / 10.0,
        !id.is_multiple_of(3)
    )
}

/// Creates the namespaces and user tables of `shape` through SQL, then fills them through
/// the store in batches of 10,000. Returns the rows written.
pub async fn generate(engine: &Engine, shape: Shape) -> Result<u64, String> {
    let admin = Session::admin();
    let mut written = 0;
    for n in 0..shape.namespaces {
        let ns = namespace(n);
        engine
            .execute(&admin, &format!("CREATE NAMESPACE {ns}"))
            .await
            .map_err(|e| e.to_string())?;
        for t in 0..shape.tables_per_namespace {
            written += create_user_table(engine, &ns, &table(t), shape.rows_per_table, shape.users)
                .await?;
        }
    }
    Ok(written)
}

/// Creates `ns.tb` (which must not exist) through SQL and fills it with `rows` rows spread
/// over `users`, through the store. Returns the rows written.
pub async fn create_user_table(
    engine: &Engine,
    ns: &str,
    tb: &str,
    rows: usize,
    users: usize,
) -> Result<u64, String> {
    create_wide_user_table(engine, ns, tb, 0).await?;
    fill_user_table(engine, ns, tb, 0, rows, users, 0)
}

/// A new database in `dir` with an empty namespace `b`, as most benches start.
pub async fn engine_with_namespace_b(dir: &std::path::Path) -> Result<Engine, String> {
    let engine = Engine::init(dir, "kalamdb-bench").map_err(|e| e.to_string())?;
    engine
        .execute(&Session::admin(), "CREATE NAMESPACE b")
        .await
        .map_err(|e| e.to_string())?;
    Ok(engine)
}

/// Creates an empty `ns.tb` with [`COLUMNS`], plus a `payload TEXT` column when
/// `payload > 0` (see [`wide_row`]).
pub async fn create_wide_user_table(
    engine: &Engine,
    ns: &str,
    tb: &str,
    payload: usize,
) -> Result<(), String> {
    create_wide_user_table_on(engine, ns, tb, payload, None).await
}

/// [`create_wide_user_table`] on the storage location `storage` (`None`: the default).
pub async fn create_wide_user_table_on(
    engine: &Engine,
    ns: &str,
    tb: &str,
    payload: usize,
    storage: Option<&str>,
) -> Result<(), String> {
    let extra = if payload > 0 { ", payload TEXT" } else { "" };
    let with = storage
        .map(|s| format!(" WITH (STORAGE = '{s}')"))
        .unwrap_or_default();
    engine
        .execute(
            &Session::admin(),
            &format!("CREATE USER TABLE {ns}.{tb} ({COLUMNS}{extra}){with}"),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A fresh database (under `KALAMDB_BENCH_DIR`) with user table `b.t` on `storage` holding
/// about `mb` MB of rows of `payload` bytes over `users` users, its memtables flushed.
/// Returns the directory (removed when dropped), the engine and the number of rows.
pub async fn filled_wide_user_table(
    mb: usize,
    payload: usize,
    users: usize,
    storage: Option<&str>,
    setup: &str,
) -> Result<(tempfile::TempDir, Engine, usize), String> {
    let tmp = tempfile::tempdir_in(std::env::var("KALAMDB_BENCH_DIR").unwrap_or(".".into()))
        .map_err(|e| e.to_string())?;
    let engine = engine_with_namespace_b(&tmp.path().join("data")).await?;
    if !setup.is_empty() {
        engine
            .execute(&Session::admin(), setup)
            .await
            .map_err(|e| e.to_string())?;
    }
    create_wide_user_table_on(&engine, "b", "t", payload, storage).await?;
    let rows = (mb << 20) / (payload + 40).max(1);
    fill_user_table(&engine, "b", "t", 0, rows, users, payload)?;
    engine
        .storage()
        .flush_memtables()
        .map_err(|e| e.to_string())?;
    Ok((tmp, engine, rows))
}

/// Writes rows `first_id..first_id + rows / users` for each of `users` users into `ns.tb`,
/// with a payload of `payload` bytes each (see [`wide_row`]).
pub fn fill_user_table(
    engine: &Engine,
    ns: &str,
    tb: &str,
    first_id: u64,
    rows: usize,
    users: usize,
    payload: usize,
) -> Result<u64, String> {
    let per_user = rows.div_ceil(users.max(1)) as u64;
    let mut written = 0;
    for u in 0..users {
        let mut batch = Vec::with_capacity(10_000);
        for id in first_id..first_id + per_user {
            batch.push((user(u), id.to_string(), wide_row(id, payload)));
            if batch.len() == 10_000 {
                written += batch.len() as u64;
                engine
                    .user_store()
                    .put_batch(ns, tb, std::mem::take(&mut batch))
                    .map_err(|e| e.to_string())?;
            }
        }
        written += batch.len() as u64;
        engine
            .user_store()
            .put_batch(ns, tb, batch)
            .map_err(|e| e.to_string())?;
    }
    Ok(written)
}

/// `queries` pseudo-random `(user, id)` pairs that exist in a dataset of `rows` rows spread
/// over `users`: the same sequence every run, so variants read the same keys.
pub fn point_picks(queries: usize, users: usize, rows: usize) -> Vec<(String, u64)> {
    let per_user = rows.div_ceil(users.max(1)).max(1) as u64;
    (0..queries as u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (
                user((h % users.max(1) as u64) as usize),
                (h >> 20) % per_user,
            )
        })
        .collect()
}
