//! Writes from many sessions at once, on a multi-threaded runtime as kalamd runs them, with
//! synced writes: INSERTs of different users into one user table go side by side (each
//! user's rows held alone, see `TableLock`), while flushes run between them. Nothing is lost,
//! and a key two sessions of one user race for is taken once.

use std::sync::Arc;

use kalamdb_core::{Access, CoreError, Engine, Session};

const USERS: usize = 8;
const STATEMENTS: usize = 25;
const ROWS: usize = 4;
const RACES: usize = 20;

#[test]
fn inserts_of_many_users_with_flushes_between_lose_nothing_and_race_once_per_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(Engine::init(&dir, "test").expect("init"));
    let engine = Engine::open_with(&dir, Access::ReadWrite, "test", true).expect("open");
    engine.set_offline();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let run = |session: &Session, sql: &str| {
        rt.block_on(engine.execute(session, sql))
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
    };
    run(
        &Session::admin(),
        "CREATE NAMESPACE app; CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)",
    );
    let engine = Arc::new(engine);
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for u in 0..USERS {
            let engine = Arc::clone(&engine);
            tasks.push(tokio::spawn(async move {
                let session = Session::user(format!("user{u}"));
                for s in 0..STATEMENTS {
                    let values: Vec<String> = (0..ROWS)
                        .map(|r| format!("({}, 'u{u} s{s} r{r}')", s * ROWS + r))
                        .collect();
                    let sql = format!("INSERT INTO app.t VALUES {}", values.join(", "));
                    engine.execute(&session, &sql).await?;
                }
                Ok::<u64, CoreError>(0)
            }));
        }
        // Two sessions of user0 race for each of RACES keys: one must be refused.
        for race in 0..RACES {
            for side in 0..2 {
                let engine = Arc::clone(&engine);
                tasks.push(tokio::spawn(async move {
                    let sql = format!("INSERT INTO app.t VALUES ({}, 'side {side}')", 1_000 + race);
                    match engine.execute(&Session::user("user0"), &sql).await {
                        Ok(_) => Ok(1),
                        Err(CoreError::AlreadyExists(_)) => Ok(0),
                        Err(e) => Err(e),
                    }
                }));
            }
        }
        let flusher = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                for _ in 0..5 {
                    engine
                        .execute(&Session::admin(), "FLUSH TABLE app.t")
                        .await?;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Ok::<u64, CoreError>(0)
            })
        };
        tasks.push(flusher);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let mut won = 0;
    for r in results {
        won += r.expect("every statement succeeds or loses its race");
    }
    assert_eq!(won, RACES as u64, "each raced key is taken exactly once");
    let engine = Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("engine still shared"));
    let count = |user: &str| -> serde_json::Value {
        let results = rt
            .block_on(engine.execute(&Session::user(user), "SELECT count(*) AS n FROM app.t"))
            .expect("count");
        let last = serde_json::to_value(results.last().expect("a result")).expect("json");
        last["rows"][0]["n"].clone()
    };
    for u in 0..USERS {
        let raced = if u == 0 { RACES } else { 0 };
        assert_eq!(
            count(&format!("user{u}")),
            serde_json::json!(STATEMENTS * ROWS + raced),
            "user{u}'s rows"
        );
    }
    let flushed = rt
        .block_on(engine.execute(
            &Session::admin(),
            "SELECT count(*) AS n FROM system.cold_batches WHERE table_name = 't'",
        ))
        .expect("batches");
    let flushed = serde_json::to_value(flushed.last().expect("a result")).expect("json");
    assert!(
        flushed["rows"][0]["n"].as_i64().is_some_and(|n| n > 0),
        "the flushes ran between the INSERTs: {flushed}"
    );
}

/// A flush no longer holds its table while it writes files: UPDATEs, DELETEs and INSERTs
/// land while it runs, and every one of them is in the table afterwards. A row changed after
/// the flush read it stays hot over its (older) flushed copy, which the counts show: the
/// flushed rows plus the hot keys exceed the keys there are.
#[test]
fn writes_during_a_flush_are_kept() {
    const ROWS: i64 = 3_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(Engine::init(&dir, "test").expect("init"));
    let engine = Engine::open_with(&dir, Access::ReadWrite, "test", false).expect("open");
    engine.set_offline();
    // Many small files: the flush takes a while, one commit per file.
    engine.set_flush_file_rows(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let admin = Session::admin();
    let run = |sql: &str| {
        rt.block_on(engine.execute(&admin, sql))
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
    };
    run("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v BIGINT)");
    for chunk in 0..ROWS / 500 {
        let values: Vec<String> = (chunk * 500..(chunk + 1) * 500)
            .map(|id| format!("({id}, 0)"))
            .collect();
        run(&format!("INSERT INTO app.t VALUES {}", values.join(", ")));
    }
    let engine = Arc::new(engine);
    // The expected table: id -> v, None for a deleted row.
    let (model, writes_during) = rt.block_on(async {
        let flushing = {
            let engine = Arc::clone(&engine);
            tokio::spawn(
                async move { engine.execute(&Session::admin(), "FLUSH TABLE app.t").await },
            )
        };
        let mut model: std::collections::BTreeMap<i64, Option<i64>> =
            (0..ROWS).map(|id| (id, Some(0))).collect();
        let mut during = 0u64;
        let mut n = 0i64;
        while !flushing.is_finished() {
            // Spread over the whole key range, so that some land in rows the flush has
            // read and not yet committed.
            let id = (n * 37) % ROWS;
            let sql = match n % 5 {
                0 => {
                    model.insert(id, None);
                    format!("DELETE FROM app.t WHERE id = {id}")
                }
                1 => {
                    let new = ROWS + n;
                    model.insert(new, Some(n));
                    format!("INSERT INTO app.t VALUES ({new}, {n})")
                }
                _ => {
                    if let Some(Some(v)) = model.get_mut(&id) {
                        *v += 1;
                    }
                    format!("UPDATE app.t SET v = v + 1 WHERE id = {id}")
                }
            };
            engine
                .execute(&Session::admin(), &sql)
                .await
                .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
            if !flushing.is_finished() {
                during += 1;
            }
            n += 1;
        }
        flushing.await.expect("task").expect("the flush succeeds");
        (model, during)
    });
    assert!(
        writes_during > 0,
        "no write landed while the flush ran (it held the table)"
    );
    let engine = Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("engine still shared"));
    let rows = rt
        .block_on(engine.execute(&admin, "SELECT id, v FROM app.t ORDER BY id"))
        .expect("select");
    let rows = serde_json::to_value(rows.last().expect("a result")).expect("json");
    let found: std::collections::BTreeMap<i64, i64> = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["id"].as_i64().expect("id"), r["v"].as_i64().expect("v")))
        .collect();
    let expected: std::collections::BTreeMap<i64, i64> = model
        .iter()
        .filter_map(|(id, v)| v.map(|v| (*id, v)))
        .collect();
    let wrong: Vec<String> = expected
        .keys()
        .chain(found.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|id| expected.get(id) != found.get(id))
        .take(10)
        .map(|id| {
            format!(
                "{id}: {:?} read, {:?} written",
                found.get(id),
                expected.get(id)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "every write made during the flush is there; first differences: {wrong:?}"
    );
    // The race landed mid-flush: some rows are both in a file and, newer, hot.
    let cold = rt
        .block_on(engine.execute(
            &admin,
            "SELECT sum(row_count) AS n FROM system.cold_batches WHERE table_name = 't'",
        ))
        .expect("batches");
    let cold = serde_json::to_value(cold.last().expect("a result")).expect("json")["rows"][0]["n"]
        .as_u64()
        .expect("flushed rows");
    let mut hot = 0u64;
    engine
        .shared_store()
        .scan_all("app", "t", |_, _| {
            hot += 1;
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .expect("scan");
    let keys = model.len() as u64;
    assert!(
        cold + hot > keys,
        "no row changed mid-flush stayed hot: {cold} flushed + {hot} hot for {keys} keys ({writes_during} writes during the flush)"
    );
}
