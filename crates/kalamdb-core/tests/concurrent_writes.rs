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
