//! Insert throughput through SQL and through the store, on identical rows, in one run.

use std::time::Instant;

use kalamdb_core::{Engine, Session};

use crate::datagen::{COLUMNS, row, sql_row, user};
use crate::report::{emit, per_second};

pub async fn run(rows: usize, batch: usize, users: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine =
        Engine::init(tmp.path().join("data"), "kalamdb-bench").map_err(|e| e.to_string())?;
    let admin = Session::admin();
    engine
        .execute(&admin, &format!("CREATE NAMESPACE b; CREATE USER TABLE b.via_sql ({COLUMNS}); CREATE USER TABLE b.via_store ({COLUMNS})"))
        .await
        .map_err(|e| e.to_string())?;
    let per_user = rows / users.max(1);

    // SQL: INSERT statements of `batch` rows each, as each user.
    let started = Instant::now();
    for u in 0..users {
        let session = Session::user(user(u));
        for chunk_start in (0..per_user).step_by(batch) {
            let end = (chunk_start + batch).min(per_user);
            let values: Vec<String> = (chunk_start..end).map(|id| sql_row(id as u64)).collect();
            let sql = format!("INSERT INTO b.via_sql VALUES {}", values.join(", "));
            engine
                .execute(&session, &sql)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let sql_time = started.elapsed();

    // Store: the same rows, the same batch size, straight into kalamdb-store.
    let started = Instant::now();
    for u in 0..users {
        for chunk_start in (0..per_user).step_by(batch) {
            let end = (chunk_start + batch).min(per_user);
            let chunk = (chunk_start..end)
                .map(|id| (user(u), id.to_string(), row(id as u64)))
                .collect();
            engine
                .user_store()
                .put_batch("b", "via_store", chunk)
                .map_err(|e| e.to_string())?;
        }
    }
    let store_time = started.elapsed();

    let n = per_user * users;
    let (sql_rps, store_rps) = (per_second(n, sql_time), per_second(n, store_time));
    println!("insert: {n} rows, {batch} per statement, {users} users");
    println!(
        "  SQL INSERT      {sql_rps:>12.0} rows/s  ({:.2} s)",
        sql_time.as_secs_f64()
    );
    println!(
        "  store put_batch {store_rps:>12.0} rows/s  ({:.2} s)",
        store_time.as_secs_f64()
    );
    println!("  ratio SQL/store {:.3}", sql_rps / store_rps);
    emit(
        "insert",
        serde_json::json!({"rows": n, "batch": batch, "users": users, "sql_rows_per_s": sql_rps.round(),
            "store_rows_per_s": store_rps.round(), "ratio_sql_to_store": sql_rps / store_rps}),
    );
    Ok(())
}
