//! DROP TABLE through SQL in a server-mode engine (as kalamd runs it): refused while live
//! subscriptions target the table; concurrent drops of one table are refused cleanly.

use kalamdb_core::{Engine, ErrorKind, Session};

async fn engine_with_table(dir: &std::path::Path) -> Engine {
    let engine = Engine::init(dir.join("data"), "test").expect("init");
    engine
        .execute(
            &Session::admin(),
            "CREATE NAMESPACE app; CREATE USER TABLE app.t (id BIGINT PRIMARY KEY); INSERT INTO app.t VALUES (1)",
        )
        .await
        .expect("setup");
    engine
}

#[tokio::test]
async fn drop_is_refused_while_a_live_query_targets_the_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_table(tmp.path()).await;
    let lq: kalamdb_sql::LiveQueryRecord = serde_json::from_value(serde_json::json!({
        "live_id": "conn1-q1", "connection_id": "conn1", "table_name": "app.t",
        "query_id": "q1", "user_id": "u0", "query": "SELECT * FROM app.t", "options": "{}",
        "created_at": 1, "updated_at": 1, "changes": 0, "node": "here"
    }))
    .expect("record");
    engine.sql().live_queries().insert(&lq).expect("insert");

    let err = engine
        .execute(&Session::admin(), "DROP TABLE app.t")
        .await
        .expect_err("drop must be refused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("conn1-q1"), "{err}");
    // Nothing changed: the table, its row, and no job.
    let rows = engine
        .execute(&Session::admin(), "SELECT id FROM app.t")
        .await
        .expect("select");
    assert_eq!(rows[0].row_count, 1);
    let jobs = engine.list_jobs(&Default::default()).expect("jobs");
    assert!(
        jobs.iter().all(|j| j.job_type != "table_deletion"),
        "{jobs:?}"
    );

    engine
        .sql()
        .live_queries()
        .delete("conn1-q1")
        .expect("delete");
    engine
        .execute(&Session::admin(), "DROP TABLE app.t")
        .await
        .expect("drop once closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_drops_of_one_table_one_wins_the_others_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_table(tmp.path()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let e = engine.clone();
        tasks.push(tokio::spawn(async move {
            e.execute(&Session::admin(), "DROP TABLE app.t").await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            // Refused at once while the winner runs (conflict, naming its job), or not found
            // once it has finished.
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict),
                    "{e}"
                );
                assert!(e.to_string().contains("app.t"), "{e}");
            }
        }
    }
    assert_eq!(ok, 1);
    let jobs = engine.list_jobs(&Default::default()).expect("jobs");
    let deletions: Vec<_> = jobs
        .iter()
        .filter(|j| j.job_type == "table_deletion")
        .collect();
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    assert_eq!(deletions[0].status, kalamdb_core::JobStatus::Completed);
}
