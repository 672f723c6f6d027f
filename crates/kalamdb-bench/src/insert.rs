//! Insert throughput through SQL and through the store, on identical rows: `repeat` rounds,
//! each into fresh tables, the two variants in alternating order. The statements' text and
//! the store's batches are built before the clock starts: only the engine is timed.

use std::time::{Duration, Instant};

use kalamdb_core::{Engine, Session};

use crate::datagen::{COLUMNS, row, sql_row, user};
use crate::report::{emit, median, per_second};

/// The SQL statements of one round, as `(user, text)`: built before the clock starts, so
/// that only the engine is timed.
fn statements(table: &str, per_user: usize, batch: usize, users: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for u in 0..users {
        for chunk_start in (0..per_user).step_by(batch) {
            let end = (chunk_start + batch).min(per_user);
            let values: Vec<String> = (chunk_start..end).map(|id| sql_row(id as u64)).collect();
            out.push((
                u,
                format!("INSERT INTO b.{table} VALUES {}", values.join(", ")),
            ));
        }
    }
    out
}

/// The same rows as store batches, built before the clock starts.
type StoreBatch = Vec<(String, String, kalamdb_core::Row)>;
fn batches(per_user: usize, batch: usize, users: usize) -> Vec<StoreBatch> {
    let mut out = Vec::new();
    for u in 0..users {
        for chunk_start in (0..per_user).step_by(batch) {
            let end = (chunk_start + batch).min(per_user);
            out.push(
                (chunk_start..end)
                    .map(|id| (user(u), id.to_string(), row(id as u64)))
                    .collect(),
            );
        }
    }
    out
}

async fn via_sql(
    engine: &Engine,
    statements: &[(usize, String)],
    users: usize,
) -> Result<Duration, String> {
    let sessions: Vec<Session> = (0..users).map(|u| Session::user(user(u))).collect();
    let started = Instant::now();
    for (u, sql) in statements {
        engine
            .execute(&sessions[*u], sql)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

/// The same statements only split and parsed (`kalamdb_core::sql::check_syntax`), to show
/// how much of the SQL path is parsing.
fn parse_only(statements: &[(usize, String)]) -> Result<Duration, String> {
    let started = Instant::now();
    for (_, sql) in statements {
        kalamdb_core::sql::check_syntax(sql).map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

fn via_store(engine: &Engine, table: &str, batches: Vec<StoreBatch>) -> Result<Duration, String> {
    let started = Instant::now();
    for chunk in batches {
        engine
            .user_store()
            .put_batch("b", table, chunk)
            .map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

pub async fn run(rows: usize, batch: usize, users: usize, repeat: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine =
        Engine::init(tmp.path().join("data"), "kalamdb-bench").map_err(|e| e.to_string())?;
    let admin = Session::admin();
    engine
        .execute(&admin, "CREATE NAMESPACE b")
        .await
        .map_err(|e| e.to_string())?;
    let per_user = rows / users.max(1);
    let n = per_user * users;
    let (mut sql, mut store, mut parse) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeat.max(1) {
        engine
            .execute(
                &admin,
                &format!("CREATE USER TABLE b.sql{r} ({COLUMNS}); CREATE USER TABLE b.store{r} ({COLUMNS})"),
            )
            .await
            .map_err(|e| e.to_string())?;
        let table = format!("store{r}");
        let texts = statements(&format!("sql{r}"), per_user, batch, users);
        let rows = batches(per_user, batch, users);
        if r % 2 == 0 {
            sql.push(per_second(n, via_sql(&engine, &texts, users).await?));
            store.push(per_second(n, via_store(&engine, &table, rows)?));
        } else {
            store.push(per_second(n, via_store(&engine, &table, rows)?));
            sql.push(per_second(n, via_sql(&engine, &texts, users).await?));
        }
        parse.push(per_second(n, parse_only(&texts)?));
    }
    let ratios: Vec<f64> = sql.iter().zip(&store).map(|(a, b)| a / b).collect();
    let (sql_rps, store_rps, ratio) = (median(&sql), median(&store), median(&ratios));
    let parse_rps = median(&parse);
    // Of each statement's time on the SQL path, the share spent splitting and parsing it.
    let parse_share = sql_rps / parse_rps.max(1e-9);
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{lo:.0}–{hi:.0}")
    };
    println!(
        "insert: {n} rows a round, {batch} per statement, {users} users, {} rounds",
        sql.len()
    );
    println!(
        "  SQL INSERT      {sql_rps:>12.0} rows/s  ({})",
        spread(&sql)
    );
    println!(
        "  store put_batch {store_rps:>12.0} rows/s  ({})",
        spread(&store)
    );
    println!(
        "  parse only      {parse_rps:>12.0} rows/s  ({})",
        spread(&parse)
    );
    println!(
        "  ratio SQL/store {ratio:.3} (median of rounds); parsing is {:.0}% of the SQL path",
        parse_share * 100.0
    );
    emit(
        "insert",
        serde_json::json!({"rows": n, "batch": batch, "users": users, "repeat": sql.len(),
            "sql_rows_per_s": sql_rps.round(), "store_rows_per_s": store_rps.round(),
            "ratio_sql_to_store": ratio, "parse_rows_per_s": parse_rps.round(),
            "parse_share_of_sql": parse_share}),
    );
    Ok(())
}
