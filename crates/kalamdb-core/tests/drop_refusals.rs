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

/// A live-query row as a server records a subscription.
fn subscription(engine: &Engine, live_id: &str, table: &str) {
    let lq: kalamdb_sql::LiveQueryRecord = serde_json::from_value(serde_json::json!({
        "live_id": live_id, "connection_id": "c1", "table_name": table,
        "query_id": "q1", "user_id": "u0", "query": format!("SELECT * FROM {table}"),
        "options": "{}", "created_at": 1, "updated_at": 1, "changes": 0, "node": "here"
    }))
    .expect("record");
    engine.sql().live_queries().insert(&lq).expect("insert");
}

#[tokio::test]
async fn operators_list_and_kill_live_queries_and_drop_force_closes_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_table(tmp.path()).await;
    let admin = Session::admin();
    subscription(&engine, "u0-c1-app.t-q1", "app.t");
    subscription(&engine, "u0-c1-app.t-q2", "app.t");

    let shown = engine
        .execute(&admin, "SHOW LIVE QUERIES")
        .await
        .expect("show");
    let ids: Vec<&str> = shown[0]
        .rows
        .iter()
        .filter_map(|r| r["live_id"].as_str())
        .collect();
    assert_eq!(ids, ["u0-c1-app.t-q1", "u0-c1-app.t-q2"]);
    for sql in ["SHOW LIVE QUERIES", "KILL LIVE QUERY 'u0-c1-app.t-q1'"] {
        let err = engine
            .execute(&Session::user("alice"), sql)
            .await
            .expect_err("admins only");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{sql}: {err}");
    }

    // The refusal names the way out.
    let err = engine
        .execute(&admin, "DROP TABLE app.t")
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("KILL LIVE QUERY 'u0-c1-app.t-q1'")
            && err.to_string().contains("FORCE"),
        "{err}"
    );

    engine
        .execute(&admin, "KILL LIVE QUERY 'u0-c1-app.t-q1'")
        .await
        .expect("kill");
    let err = engine
        .execute(&admin, "KILL LIVE QUERY 'u0-c1-app.t-q1'")
        .await
        .expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // FORCE closes what is left, and the deletion job's result says so.
    engine
        .execute(&admin, "DROP TABLE app.t FORCE")
        .await
        .expect("drop force");
    assert!(
        engine
            .execute(&admin, "SHOW LIVE QUERIES")
            .await
            .expect("show")[0]
            .rows
            .is_empty()
    );
    let jobs = engine.list_jobs(&Default::default()).expect("jobs");
    let deletion = jobs
        .iter()
        .find(|j| j.job_type == "table_deletion")
        .expect("deletion job");
    let result: serde_json::Value =
        serde_json::from_str(deletion.result.as_deref().unwrap_or("{}")).expect("result");
    assert_eq!(
        result["subscriptions_closed"],
        serde_json::json!(["u0-c1-app.t-q2"]),
        "{result}"
    );
}
