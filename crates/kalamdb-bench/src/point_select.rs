//! Point-SELECT latency by primary key on a large user table: the SQL fast path, the same
//! lookup planned by DataFusion, a direct store get, and the fast path on a second table of
//! the same rows once flushed to Parquet. The variants run interleaved, `repeat` rounds.

use std::time::{Duration, Instant};

use kalamdb_core::{Engine, Session};

use crate::datagen;
use crate::report::{emit, median, micros, percentile};

/// One variant's latencies, one sorted list per round.
#[derive(Default)]
struct Variant {
    rounds: Vec<Vec<Duration>>,
}

impl Variant {
    fn push_round(&mut self, mut round: Vec<Duration>) {
        round.sort();
        self.rounds.push(round);
    }
    /// The median over rounds of each round's p-th percentile, in µs; and its spread.
    fn figure(&self, p: f64) -> (f64, f64, f64) {
        let per_round: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| micros(percentile(r, p)))
            .collect();
        let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let max = per_round.iter().copied().fold(0.0, f64::max);
        (median(&per_round), min, max)
    }
}

async fn sql_round(
    engine: &Engine,
    picks: &[(String, u64)],
    sql: impl Fn(u64) -> String,
) -> Result<Vec<Duration>, String> {
    let mut lat = Vec::with_capacity(picks.len());
    for (u, id) in picks {
        let session = Session::user(u.clone());
        let text = sql(*id);
        let t = Instant::now();
        let out = engine
            .execute(&session, &text)
            .await
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        if out[0].row_count != 1 {
            return Err(format!("`{text}` as {u}: {} rows", out[0].row_count));
        }
    }
    Ok(lat)
}

pub async fn run(rows: usize, users: usize, queries: usize, repeat: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine =
        Engine::init(tmp.path().join("data"), "kalamdb-bench").map_err(|e| e.to_string())?;
    let ns = datagen::namespace(0);
    let (hot, cold) = (datagen::table(0), datagen::table(1));
    let started = Instant::now();
    let written = datagen::generate(
        &engine,
        datagen::Shape {
            namespaces: 1,
            tables_per_namespace: 2,
            users,
            rows_per_table: rows,
        },
    )
    .await?;
    engine
        .flush_table(&ns, &cold)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "point-select: {written} rows in two tables for {users} users, one flushed, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The same pseudo-random (user, id) sequence for every variant.
    let picks = datagen::point_picks(queries, users, rows);
    let (mut fast, mut planned, mut get, mut flushed) = (
        Variant::default(),
        Variant::default(),
        Variant::default(),
        Variant::default(),
    );
    for _ in 0..repeat.max(1) {
        fast_round(&engine, &picks, &ns, &hot, &mut fast).await?;
        // The same lookup with a clause the fast path does not take: DataFusion plans it and
        // pushes the key down to the same read.
        planned.push_round(
            sql_round(&engine, &picks, |id| {
                format!("SELECT * FROM {ns}.{hot} WHERE id = {id} AND true")
            })
            .await?,
        );
        let mut round = Vec::with_capacity(picks.len());
        for (u, id) in &picks {
            let t = Instant::now();
            let row = engine
                .user_store()
                .get(&ns, &hot, u, &id.to_string())
                .map_err(|e| e.to_string())?;
            round.push(t.elapsed());
            if row.is_none() {
                return Err(format!("missing row {u}/{id}"));
            }
        }
        get.push_round(round);
        fast_round(&engine, &picks, &ns, &cold, &mut flushed).await?;
    }
    let show = |name: &str, v: &Variant| {
        let (p50, lo, hi) = v.figure(50.0);
        let (p99, _, _) = v.figure(99.0);
        println!("  {name:<34} p50 {p50:>8.1} µs ({lo:.1}–{hi:.1})  p99 {p99:>8.1} µs");
    };
    show("SQL point SELECT (fast path)", &fast);
    show("SQL point SELECT planned", &planned);
    show("store get", &get);
    show("SQL point SELECT of a flushed row", &flushed);
    let p = |v: &Variant, q| v.figure(q).0;
    println!(
        "  ratio fast/get p50 {:.1}; planned/fast p50 {:.1}",
        p(&fast, 50.0) / p(&get, 50.0).max(1e-3),
        p(&planned, 50.0) / p(&fast, 50.0).max(1e-3)
    );
    emit(
        "point_select",
        serde_json::json!({"rows": written / 2, "users": users, "queries": queries, "repeat": repeat,
            "fast_p50_us": p(&fast, 50.0), "fast_p99_us": p(&fast, 99.0),
            "planned_p50_us": p(&planned, 50.0), "planned_p99_us": p(&planned, 99.0),
            "get_p50_us": p(&get, 50.0), "get_p99_us": p(&get, 99.0),
            "flushed_p50_us": p(&flushed, 50.0), "flushed_p99_us": p(&flushed, 99.0),
            "ratio_fast_to_get_p50": p(&fast, 50.0) / p(&get, 50.0).max(1e-3),
            "ratio_planned_to_fast_p50": p(&planned, 50.0) / p(&fast, 50.0).max(1e-3)}),
    );
    Ok(())
}

async fn fast_round(
    engine: &Engine,
    picks: &[(String, u64)],
    ns: &str,
    table: &str,
    into: &mut Variant,
) -> Result<(), String> {
    into.push_round(
        sql_round(engine, picks, |id| {
            format!("SELECT * FROM {ns}.{table} WHERE id = {id}")
        })
        .await?,
    );
    Ok(())
}
