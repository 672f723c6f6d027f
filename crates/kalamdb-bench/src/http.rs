//! kalamd's HTTP overhead: the same batched INSERTs (concurrency 1, 8, 32) and point SELECTs
//! on a 1,000,000-row user table, in-process and over HTTP against the real kalamd binary,
//! with the store's own `put_batch` of the same rows as the INSERTs' floor: unsynced (as the
//! in-process engine writes) and synced (as kalamd writes by default), at each concurrency;
//! then kalamd again with `storage.sync_writes: false`, against an unsynced floor measured
//! beside it.
//! The INSERT variants run `repeat` rounds, alternated within each round, into fresh tables;
//! every statement text and batch is built before its clock starts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kalamdb_core::{Access, Engine, Session};
use serde_json::json;

use crate::datagen::{self, COLUMNS, Shape, row, sql_row, user};
use crate::report::{emit, median, micros, per_second, percentile};

pub(crate) const TOKEN: &str = "bench-admin-token-0123456789";
const CONCURRENCY: [usize; 3] = [1, 8, 32];

/// The INSERT statements one worker sends: `statements` of `batch` rows with distinct ids.
fn statements(table: &str, worker: usize, statements: usize, batch: usize) -> Vec<String> {
    (0..statements)
        .map(|s| {
            let base = (worker * statements + s) * batch;
            let rows: Vec<String> = (base..base + batch).map(|id| sql_row(id as u64)).collect();
            format!("INSERT INTO {table} VALUES {}", rows.join(", "))
        })
        .collect()
}

/// The statements of `clients` workers, built before any clock starts.
pub(crate) fn work(
    table: &str,
    clients: usize,
    per_worker: usize,
    batch: usize,
) -> Vec<Vec<String>> {
    (0..clients)
        .map(|w| statements(table, w, per_worker, batch))
        .collect()
}

/// `clients` threads, each sending its statements of `work` as its own user; returns rows
/// per second.
pub(crate) fn insert_over_http(
    port: u16,
    work: Vec<Vec<String>>,
    batch: usize,
) -> Result<f64, String> {
    let rows = work.iter().map(Vec::len).sum::<usize>() * batch;
    let started = Instant::now();
    let handles: Vec<_> = work
        .into_iter()
        .enumerate()
        .map(|(w, stmts)| {
            std::thread::spawn(move || {
                let agent = agent();
                for s in stmts {
                    post(&agent, port, &user(w), &s)?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "client panicked".to_string())??;
    }
    Ok(per_second(rows, started.elapsed()))
}

/// The same statements through the engine in-process, one task a worker.
async fn insert_in_process(
    engine: &Engine,
    work: Vec<Vec<String>>,
    batch: usize,
) -> Result<f64, String> {
    let rows = work.iter().map(Vec::len).sum::<usize>() * batch;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, stmts) in work.into_iter().enumerate() {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let session = Session::user(user(w));
            for s in stmts {
                engine
                    .execute(&session, &s)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(per_second(rows, started.elapsed()))
}

type StoreBatch = Vec<(String, String, kalamdb_core::Row)>;

/// The rows of [`work`] as store batches, built before any clock starts.
fn store_work(clients: usize, per_worker: usize, batch: usize) -> Vec<Vec<StoreBatch>> {
    (0..clients)
        .map(|w| {
            (0..per_worker)
                .map(|s| {
                    let base = (w * per_worker + s) * batch;
                    (base..base + batch)
                        .map(|id| (user(w), id.to_string(), row(id as u64)))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The floor: `clients` threads writing their batches with the store's `put_batch` into
/// `ns.table`; returns rows per second.
fn put_batches(
    engine: &Engine,
    ns: &str,
    table: &str,
    work: Vec<Vec<StoreBatch>>,
) -> Result<f64, String> {
    let rows: usize = work.iter().flatten().map(Vec::len).sum();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|batches| {
                scope.spawn(move || {
                    for b in batches {
                        engine
                            .user_store()
                            .put_batch(ns, table, b)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "writer panicked".to_string())??;
        }
        Ok::<_, String>(())
    })?;
    Ok(per_second(rows, started.elapsed()))
}

async fn create_table(engine: &Engine, qualified: &str) -> Result<(), String> {
    engine
        .execute(
            &Session::admin(),
            &format!("CREATE USER TABLE {qualified} ({COLUMNS})"),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The median and the spread of samples, as figures `{name}` and `{name}_spread`.
fn record(figures: &mut serde_json::Map<String, serde_json::Value>, name: &str, samples: &[f64]) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    figures.insert(name.into(), json!(median(&v).round()));
    if let (Some(lo), Some(hi)) = (v.first(), v.last()) {
        figures.insert(format!("{name}_spread"), json!([lo.round(), hi.round()]));
    }
}

pub(crate) fn kalamd_path() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name("kalamd");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: cargo build --release -p kalamd",
            path.display()
        ))
    }
}

pub(crate) struct Kalamd(pub(crate) Child);
impl Drop for Kalamd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; SIGTERM lets it close RocksDB cleanly.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

pub(crate) fn start_kalamd(data: &Path) -> Result<(Kalamd, u16), String> {
    start_kalamd_with(data, &[])
}

/// Starts the release kalamd on `data` with extra `KALAMD_*` settings; waits until ready.
pub(crate) fn start_kalamd_with(
    data: &Path,
    env: &[(&str, &str)],
) -> Result<(Kalamd, u16), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(kalamd_path()?)
        .env("KALAMD_DATA_DIR", data)
        .env("KALAMD_LISTEN", format!("127.0.0.1:{port}"))
        .env("KALAMD_AUTH_TOKENS", format!("{TOKEN}:root:admin"))
        .env("KALAMD_LOGGING_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let k = Kalamd(child);
    let agent = agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent
        .get(format!("http://127.0.0.1:{port}/ready"))
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        if Instant::now() > deadline {
            return Err("kalamd did not become ready".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((k, port))
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub(crate) fn post(
    agent: &ureq::Agent,
    port: u16,
    as_user: &str,
    sql: &str,
) -> Result<serde_json::Value, String> {
    let mut r = agent
        .post(format!("http://127.0.0.1:{port}/v1/api/sql"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Kalam-User-Id", as_user)
        .send_json(json!({ "sql": sql }))
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(body)
}

pub async fn run(
    rows: usize,
    users: usize,
    queries: usize,
    per_worker: usize,
    batch: usize,
    repeat: usize,
) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = tmp.path().join("data");
    let (ns, tb) = (datagen::namespace(0), datagen::table(0));
    let picks = datagen::point_picks(queries, users, rows);
    let mut figures = serde_json::Map::new();
    let repeat = repeat.max(1);
    // Per concurrency: the samples of each variant, one a round.
    let mut in_process: Vec<Vec<f64>> = vec![Vec::new(); CONCURRENCY.len()];
    let mut unsynced = in_process.clone();
    let mut synced = in_process.clone();
    let mut http = in_process.clone();
    // The same two, with the WAL not synced (`storage.sync_writes: false`) on both sides.
    let mut unsynced_again = in_process.clone();
    let mut http_unsynced = in_process.clone();

    // In-process (the engine as `Engine::init` opens it: WAL not synced).
    {
        let engine = Engine::init(&data, "kalamdb-bench").map_err(|e| e.to_string())?;
        let written = datagen::generate(
            &engine,
            Shape {
                namespaces: 1,
                tables_per_namespace: 1,
                users,
                rows_per_table: rows,
            },
        )
        .await?;
        println!("http: generated {written} rows for {users} users");
        for round in 0..repeat {
            for (i, c) in CONCURRENCY.into_iter().enumerate() {
                let sql_table = format!("{ns}.ins_local_{c}_{round}");
                create_table(&engine, &sql_table).await?;
                let store_table = format!("floor_unsynced_{c}_{round}");
                create_table(&engine, &format!("{ns}.{store_table}")).await?;
                let texts = work(&sql_table, c, per_worker, batch);
                let batches = store_work(c, per_worker, batch);
                // The two in alternating order, round by round.
                if round % 2 == 0 {
                    in_process[i].push(insert_in_process(&engine, texts, batch).await?);
                    unsynced[i].push(put_batches(&engine, &ns, &store_table, batches)?);
                } else {
                    unsynced[i].push(put_batches(&engine, &ns, &store_table, batches)?);
                    in_process[i].push(insert_in_process(&engine, texts, batch).await?);
                }
            }
        }
        let mut lat = Vec::with_capacity(queries);
        for (u, id) in &picks {
            let t = Instant::now();
            let out = engine
                .execute(
                    &Session::user(u.clone()),
                    &format!("SELECT * FROM {ns}.{tb} WHERE id = {id}"),
                )
                .await
                .map_err(|e| e.to_string())?;
            lat.push(t.elapsed());
            if out[0].row_count != 1 {
                return Err(format!("expected one row for {u}/{id}"));
            }
        }
        lat.sort();
        figures.insert(
            "inprocess_select_p50_us".into(),
            json!(micros(percentile(&lat, 50.0))),
        );
        figures.insert(
            "inprocess_select_p99_us".into(),
            json!(micros(percentile(&lat, 99.0))),
        );
        drop(engine);
    }
    // Reopen check: the directory is intact before handing it to kalamd.
    drop(Engine::open(&data, Access::ReadOnly, "kalamdb-bench").map_err(|e| e.to_string())?);

    // Round by round, on the same directory: the store's floor in-process, then kalamd over
    // loopback HTTP; with a synced WAL (kalamd's default), then with `storage.sync_writes`
    // off on both sides.
    for round in 0..repeat {
        for (sync, floor, over_http) in [
            (true, &mut synced, &mut http),
            (false, &mut unsynced_again, &mut http_unsynced),
        ] {
            let tag = if sync { "synced" } else { "unsynced" };
            {
                let engine = Engine::open_with(&data, Access::ReadWrite, "kalamdb-bench", sync)
                    .map_err(|e| e.to_string())?;
                for (i, c) in CONCURRENCY.into_iter().enumerate() {
                    let table = format!("floor_{tag}_{c}_{round}_again");
                    create_table(&engine, &format!("{ns}.{table}")).await?;
                    let batches = store_work(c, per_worker, batch);
                    floor[i].push(put_batches(&engine, &ns, &table, batches)?);
                }
            }
            let setting = if sync { "true" } else { "false" };
            let (kalamd, port) =
                start_kalamd_with(&data, &[("KALAMD_STORAGE_SYNC_WRITES", setting)])?;
            for (i, c) in CONCURRENCY.into_iter().enumerate() {
                let table = format!("{ns}.ins_http_{tag}_{c}_{round}");
                post(
                    &agent(),
                    port,
                    "root",
                    &format!("CREATE USER TABLE {table} ({COLUMNS})"),
                )?;
                over_http[i].push(insert_over_http(
                    port,
                    work(&table, c, per_worker, batch),
                    batch,
                )?);
            }
            drop(kalamd);
        }
    }
    for (i, c) in CONCURRENCY.into_iter().enumerate() {
        for (name, samples) in [
            ("inprocess_insert", &in_process),
            ("store_unsynced", &unsynced),
            ("store_synced", &synced),
            ("http_insert", &http),
            ("store_unsynced_again", &unsynced_again),
            ("http_insert_unsynced", &http_unsynced),
        ] {
            record(
                &mut figures,
                &format!("{name}_c{c}_rows_per_s"),
                &samples[i],
            );
        }
        // Ratios within each round, then their median.
        let ratio =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
        let mut put = |name: String, r: Vec<f64>| {
            figures.insert(name, json!(median(&r)));
        };
        put(
            format!("ratio_http_to_store_synced_c{c}"),
            ratio(&http[i], &synced[i]),
        );
        put(
            format!("ratio_http_to_store_unsynced_c1_c{c}"),
            ratio(&http[i], &unsynced[0]),
        );
        put(
            format!("ratio_http_unsynced_to_store_unsynced_c{c}"),
            ratio(&http_unsynced[i], &unsynced_again[i]),
        );
        put(
            format!("ratio_http_unsynced_to_store_unsynced_c1_c{c}"),
            ratio(&http_unsynced[i], &unsynced_again[0]),
        );
        put(
            format!("ratio_http_to_inprocess_insert_c{c}"),
            ratio(&http[i], &in_process[i]),
        );
        put(
            format!("ratio_inprocess_to_store_unsynced_c{c}"),
            ratio(&in_process[i], &unsynced[i]),
        );
    }

    let (kalamd, port) = start_kalamd(&data)?;
    // Point SELECTs, interleaved with the floor: `GET /health` through the same client and
    // connection (loopback, HTTP/1.1 parsing both ways, a small JSON body; no token, no SQL).
    // Three rounds; the medians of the rounds' percentiles.
    let agent = Arc::new(agent());
    let health = |agent: &ureq::Agent| -> Result<(), String> {
        let mut r = agent
            .get(format!("http://127.0.0.1:{port}/health"))
            .call()
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
        if body["status"] != "ok" {
            return Err(format!("/health answered {body}"));
        }
        Ok(())
    };
    let (mut select_rounds, mut floor_rounds) = (Vec::new(), Vec::new());
    for _round in 0..3 {
        let (mut select, mut floor) = (Vec::with_capacity(queries), Vec::with_capacity(queries));
        for (u, id) in &picks {
            let t = Instant::now();
            health(&agent)?;
            floor.push(t.elapsed());
            let t = Instant::now();
            let body = post(
                &agent,
                port,
                u,
                &format!("SELECT * FROM {ns}.{tb} WHERE id = {id}"),
            )?;
            select.push(t.elapsed());
            if body["results"][0]["row_count"] != 1 {
                return Err(format!("expected one row for {u}/{id}: {body}"));
            }
        }
        select.sort();
        floor.sort();
        select_rounds.push(select);
        floor_rounds.push(floor);
    }
    drop(kalamd);
    for (name, rounds) in [
        ("http_select", &select_rounds),
        ("http_floor", &floor_rounds),
    ] {
        for p in [50.0, 99.0] {
            let mut each: Vec<f64> = rounds
                .iter()
                .map(|lat| micros(percentile(lat, p)))
                .collect();
            each.sort_by(f64::total_cmp);
            figures.insert(format!("{name}_p{p:.0}_us"), json!(each[each.len() / 2]));
            figures.insert(
                format!("{name}_p{p:.0}_us_spread"),
                json!([each[0], each[each.len() - 1]]),
            );
        }
    }
    let floor_p50 = fig(&figures, "http_floor_p50_us");
    let select_p50 = fig(&figures, "http_select_p50_us");
    figures.insert(
        "http_select_p50_over_floor_us".into(),
        json!(select_p50 - floor_p50),
    );
    println!(
        "  GET /health p50 {floor_p50:.1} µs: point SELECT p50 {select_p50:.1} µs is the floor + {:.1} µs",
        select_p50 - floor_p50
    );

    println!(
        "  {:<22} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9} {:>12} {:>9}",
        "rows/s (medians)",
        "in-process",
        "store",
        "store synced",
        "HTTP",
        "HTTP/syn",
        "HTTP/st1",
        "HTTP unsync",
        "HTTPu/st"
    );
    for c in CONCURRENCY {
        let f = |k: &str| fig(&figures, k);
        println!(
            "  {:<22} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>9.3} {:>9.3} {:>12.0} {:>9.3}",
            format!("INSERT x{batch}, c={c}"),
            f(&format!("inprocess_insert_c{c}_rows_per_s")),
            f(&format!("store_unsynced_c{c}_rows_per_s")),
            f(&format!("store_synced_c{c}_rows_per_s")),
            f(&format!("http_insert_c{c}_rows_per_s")),
            f(&format!("ratio_http_to_store_synced_c{c}")),
            f(&format!("ratio_http_to_store_unsynced_c1_c{c}")),
            f(&format!("http_insert_unsynced_c{c}_rows_per_s")),
            f(&format!("ratio_http_unsynced_to_store_unsynced_c{c}")),
        );
    }
    for p in ["p50", "p99"] {
        let (l, h) = (
            fig(&figures, &format!("inprocess_select_{p}_us")),
            fig(&figures, &format!("http_select_{p}_us")),
        );
        println!(
            "  {:<24} {l:>11.1} µs {h:>11.1} µs {:>8.2}",
            format!("point SELECT {p}"),
            h / l
        );
        figures.insert(format!("ratio_http_to_inprocess_select_{p}"), json!(h / l));
    }
    figures.insert("rows".into(), json!(rows));
    figures.insert("batch".into(), json!(batch));
    figures.insert("statements_per_worker".into(), json!(per_worker));
    figures.insert("repeat".into(), json!(repeat));
    emit("http", serde_json::Value::Object(figures));
    Ok(())
}

fn fig(figures: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    figures
        .get(key)
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN)
}
