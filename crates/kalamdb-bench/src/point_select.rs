//! Point-SELECT latency by primary key on a large user table, vs a direct store get.

use std::time::{Duration, Instant};

use kalamdb_core::{Engine, Session};

use crate::datagen::{self, Shape};
use crate::report::{emit, micros, percentile};

pub async fn run(rows: usize, users: usize, queries: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine =
        Engine::init(tmp.path().join("data"), "kalamdb-bench").map_err(|e| e.to_string())?;
    let shape = Shape {
        namespaces: 1,
        tables_per_namespace: 1,
        users,
        rows_per_table: rows,
    };
    let started = Instant::now();
    let written = datagen::generate(&engine, shape).await?;
    println!(
        "point-select: generated {written} rows for {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (ns, tb) = (datagen::namespace(0), datagen::table(0));
    // The same pseudo-random (user, id) sequence for both variants.
    let picks = datagen::point_picks(queries, users, rows);

    let mut sql_lat = Vec::with_capacity(queries);
    for (u, id) in &picks {
        let session = Session::user(u.clone());
        let sql = format!("SELECT * FROM {ns}.{tb} WHERE id = {id}");
        let t = Instant::now();
        let out = engine
            .execute(&session, &sql)
            .await
            .map_err(|e| e.to_string())?;
        sql_lat.push(t.elapsed());
        if out[0].row_count != 1 {
            return Err(format!(
                "expected one row for {u}/{id}, got {}",
                out[0].row_count
            ));
        }
    }
    let mut get_lat = Vec::with_capacity(queries);
    for (u, id) in &picks {
        let t = Instant::now();
        let row = engine
            .user_store()
            .get(&ns, &tb, u, &id.to_string())
            .map_err(|e| e.to_string())?;
        get_lat.push(t.elapsed());
        if row.is_none() {
            return Err(format!("missing row {u}/{id}"));
        }
    }
    sql_lat.sort();
    get_lat.sort();
    let f = |v: &[Duration], p| micros(percentile(v, p));
    println!(
        "  SQL point SELECT  p50 {:>9.1} µs  p99 {:>9.1} µs",
        f(&sql_lat, 50.0),
        f(&sql_lat, 99.0)
    );
    println!(
        "  store get         p50 {:>9.1} µs  p99 {:>9.1} µs",
        f(&get_lat, 50.0),
        f(&get_lat, 99.0)
    );
    println!(
        "  ratio SQL/get p50 {:.1}",
        f(&sql_lat, 50.0) / f(&get_lat, 50.0).max(1e-3)
    );
    emit(
        "point_select",
        serde_json::json!({"rows": written, "users": users, "queries": queries,
            "sql_p50_us": f(&sql_lat, 50.0), "sql_p99_us": f(&sql_lat, 99.0),
            "get_p50_us": f(&get_lat, 50.0), "get_p99_us": f(&get_lat, 99.0),
            "ratio_sql_to_get_p50": f(&sql_lat, 50.0) / f(&get_lat, 50.0).max(1e-3)}),
    );
    Ok(())
}
