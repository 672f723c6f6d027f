//! Live queries on an engine in this process: what a subscriber receives for each committed
//! change, user isolation, the `system.live_queries` rows, KILL, DROP ... FORCE, slow
//! consumers and resuming from a sequence. kalamd's WebSocket protocol over these is tested
//! end to end in kalamd/tests/live.rs.

use std::time::Duration;

use kalamdb_core::live::{ChangeType, Closed, Connection, Delivery, SubscribeOptions};
use kalamdb_core::{Engine, Session};
use serde_json::{Value, json};

struct Live {
    _tmp: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    engine: Engine,
}

impl Live {
    fn new() -> Live {
        let tmp = tempfile::tempdir().expect("tempdir");
        let engine = Engine::init(tmp.path().join("data"), "test").expect("init");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let live = Live {
            _tmp: tmp,
            rt,
            engine,
        };
        live.sql(
            None,
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, n INT); \
             CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT)",
        );
        live
    }

    fn sql(&self, user: Option<&str>, sql: &str) -> Vec<kalamdb_core::QueryResult> {
        let session = user.map_or_else(Session::admin, Session::user);
        self.rt
            .block_on(self.engine.execute(&session, sql))
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"))
    }

    fn subscribe(
        &self,
        conn: &Connection,
        id: &str,
        sql: &str,
        options: SubscribeOptions,
    ) -> kalamdb_core::Initial {
        self.rt
            .block_on(self.engine.subscribe(conn, id, sql, &options))
            .unwrap_or_else(|e| panic!("subscribe `{sql}`: {e}"))
    }

    /// The next change, within a second.
    fn next(&self, conn: &mut Connection) -> Option<Delivery> {
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), conn.recv())
                .await
                .ok()
                .flatten()
        })
    }

    /// Nothing more arrives within 200 ms.
    fn quiet(&self, conn: &mut Connection) {
        let more = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(200), conn.recv())
                .await
                .ok()
                .flatten()
        });
        assert!(more.is_none(), "unexpected change: {more:?}");
    }

    fn closed(&self, conn: &Connection) -> Vec<Closed> {
        self.rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await;
        });
        conn.take_closed()
    }

    fn live_rows(&self) -> Vec<Value> {
        self.sql(
            None,
            "SELECT live_id, user_id, table_name FROM system.live_queries",
        )[0]
        .rows
        .iter()
        .map(|r| Value::Object(r.clone()))
        .collect()
    }
}

fn bodies(rows: &[kalamdb_core::Row]) -> Vec<Value> {
    rows.iter().map(|r| r["body"].clone()).collect()
}

#[test]
fn a_subscriber_receives_each_matching_change_once_in_commit_order() {
    let live = Live::new();
    live.sql(
        Some("alice"),
        "INSERT INTO app.notes VALUES (1, 'old', 5), (2, 'small', 1)",
    );
    let mut conn = live.engine.connect_live("alice");
    let initial = live.subscribe(
        &conn,
        "s1",
        "SELECT id, body FROM app.notes WHERE n >= 3",
        SubscribeOptions::default(),
    );
    assert_eq!(initial.columns, ["id", "body"]);
    assert_eq!(
        initial
            .rows
            .iter()
            .map(|r| Value::Object(r.clone()))
            .collect::<Vec<_>>(),
        vec![json!({"id": 1, "body": "old"})]
    );
    assert_eq!(live.live_rows().len(), 1, "{:?}", live.live_rows());

    // Bob's rows are his own: alice never sees them.
    live.sql(Some("bob"), "INSERT INTO app.notes VALUES (10, 'bob', 9)");
    live.sql(
        Some("alice"),
        "INSERT INTO app.notes VALUES (3, 'new', 7), (4, 'tiny', 0)",
    );
    let d = live.next(&mut conn).expect("insert");
    assert_eq!(
        (d.change_type, bodies(&d.rows)),
        (ChangeType::Insert, vec![json!("new")])
    );
    assert_eq!(
        d.rows[0].len(),
        2,
        "only the subscribed columns: {:?}",
        d.rows[0]
    );
    let mut last = d.seq;

    // An update that keeps a row in view, one that brings one in, one that takes one out.
    live.sql(
        Some("alice"),
        "UPDATE app.notes SET body = 'newer' WHERE id = 3",
    );
    let d = live.next(&mut conn).expect("update");
    assert_eq!(d.change_type, ChangeType::Update);
    assert_eq!(bodies(&d.rows), vec![json!("newer")]);
    assert_eq!(bodies(&d.old_values), vec![json!("new")]);
    assert!(d.seq > last);
    last = d.seq;
    live.sql(Some("alice"), "UPDATE app.notes SET n = 8 WHERE id = 2");
    let d = live.next(&mut conn).expect("entered");
    assert_eq!(
        (d.change_type, bodies(&d.rows)),
        (ChangeType::Insert, vec![json!("small")])
    );
    assert!(d.seq > last);
    last = d.seq;
    live.sql(Some("alice"), "UPDATE app.notes SET n = 0 WHERE id = 1");
    let d = live.next(&mut conn).expect("left");
    assert_eq!(
        (d.change_type, bodies(&d.rows)),
        (ChangeType::Delete, vec![json!("old")])
    );
    assert!(d.seq > last);
    last = d.seq;

    // A soft delete is a delete; a flush changes nothing a subscriber sees.
    live.sql(Some("alice"), "DELETE FROM app.notes WHERE id = 3");
    let d = live.next(&mut conn).expect("delete");
    assert_eq!(
        (d.change_type, bodies(&d.rows)),
        (ChangeType::Delete, vec![json!("newer")])
    );
    assert!(d.seq > last);
    live.sql(None, "FLUSH TABLE app.notes");
    live.quiet(&mut conn);

    // The row goes with the connection.
    drop(conn);
    assert_eq!(live.live_rows(), Vec::<Value>::new());
}

#[test]
fn kill_and_drop_force_close_subscriptions_and_tell_the_client() {
    let live = Live::new();
    let conn = live.engine.connect_live("root");
    let initial = live.subscribe(
        &conn,
        "a",
        "SELECT * FROM app.cfg",
        SubscribeOptions::default(),
    );
    live.subscribe(
        &conn,
        "b",
        "SELECT v FROM app.cfg WHERE k = 'x'",
        SubscribeOptions::default(),
    );
    assert_eq!(live.live_rows().len(), 2);

    live.sql(None, &format!("KILL LIVE QUERY '{}'", initial.live_id));
    let closed = live.closed(&conn);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(
        (closed[0].subscription_id.as_str(), closed[0].code),
        ("a", "killed")
    );
    assert_eq!(live.live_rows().len(), 1);

    // A drop is refused while a subscription lives, naming it; FORCE closes it.
    let refused = live
        .rt
        .block_on(live.engine.execute(&Session::admin(), "DROP TABLE app.cfg"))
        .expect_err("refused");
    assert!(refused.to_string().contains("KILL LIVE QUERY"), "{refused}");
    live.sql(None, "DROP TABLE app.cfg FORCE");
    let closed = live.closed(&conn);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(
        (closed[0].subscription_id.as_str(), closed[0].code),
        ("b", "table_dropped")
    );
    assert_eq!(live.live_rows(), Vec::<Value>::new());
}

#[test]
fn a_slow_consumer_is_closed_and_memory_stays_bounded() {
    let live = Live::new();
    let conn = live.engine.connect_live("root");
    live.subscribe(
        &conn,
        "s",
        "SELECT * FROM app.cfg",
        SubscribeOptions::default(),
    );
    // Never read: the connection's buffer fills, then the subscription is closed.
    for i in 0..(kalamdb_core::live::CONNECTION_BUFFER + 10) {
        live.sql(None, &format!("INSERT INTO app.cfg VALUES ('k{i}', 'v')"));
    }
    let closed = live.closed(&conn);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].code, "slow_consumer");
    assert!(
        closed[0].message.contains("options.from"),
        "{}",
        closed[0].message
    );
    let stats = &live.engine.live().stats;
    assert_eq!(
        stats
            .slow_consumers_closed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .subscriptions
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(live.live_rows(), Vec::<Value>::new());
}

#[test]
fn a_subscriber_that_returns_with_its_last_sequence_gets_what_it_missed() {
    let live = Live::new();
    let mut conn = live.engine.connect_live("root");
    live.subscribe(
        &conn,
        "s",
        "SELECT k, v FROM app.cfg",
        SubscribeOptions::default(),
    );
    live.sql(None, "INSERT INTO app.cfg VALUES ('a', '1')");
    let seen = live.next(&mut conn).expect("first").seq;
    drop(conn);
    live.sql(
        None,
        "INSERT INTO app.cfg VALUES ('b', '2'); UPDATE app.cfg SET v = '3' WHERE k = 'a'",
    );

    let conn = live.engine.connect_live("root");
    let back = live.subscribe(
        &conn,
        "s",
        "SELECT k, v FROM app.cfg",
        SubscribeOptions {
            from: Some(seen),
            ..SubscribeOptions::default()
        },
    );
    assert!(
        back.rows.is_empty(),
        "resumed, not restarted: {:?}",
        back.rows
    );
    let replayed = back.replayed.expect("every change since was kept");
    let got: Vec<(ChangeType, Value)> = replayed
        .iter()
        .map(|d| (d.change_type, Value::Object(d.rows[0].clone())))
        .collect();
    assert_eq!(
        got,
        vec![
            (ChangeType::Insert, json!({"k": "b", "v": "2"})),
            (ChangeType::Update, json!({"k": "a", "v": "3"})),
        ]
    );
    assert!(replayed.iter().all(|d| d.seq > seen));

    // A sequence older than what the server kept: the current rows instead.
    let again = live.subscribe(
        &conn,
        "t",
        "SELECT k, v FROM app.cfg",
        SubscribeOptions {
            from: Some(1),
            last_rows: Some(1),
            ..SubscribeOptions::default()
        },
    );
    assert!(again.replayed.is_none());
    assert_eq!(again.rows.len(), 1, "last_rows: {:?}", again.rows);
}

#[test]
fn queries_that_cannot_be_evaluated_per_change_are_refused() {
    let live = Live::new();
    let conn = live.engine.connect_live("root");
    for (sql, needle) in [
        ("SELECT * FROM app.cfg ORDER BY k", "ORDER BY"),
        ("SELECT count(*) FROM app.cfg", "not a column"),
        (
            "SELECT * FROM app.cfg a JOIN app.notes b ON true",
            "exactly one table",
        ),
        ("SELECT * FROM system.jobs", "system tables"),
        ("SELECT nope FROM app.cfg", "column 'nope' does not exist"),
        ("SELECT * FROM app.cfg WHERE k || 'x'", "not a condition"),
        (
            "SELECT * FROM app.cfg WHERE v + 1 > 0",
            "cannot be evaluated",
        ),
        ("SELECT * FROM app.missing", "missing"),
        ("DELETE FROM app.cfg", "one SELECT"),
    ] {
        let err = live
            .rt
            .block_on(
                live.engine
                    .subscribe(&conn, "x", sql, &SubscribeOptions::default()),
            )
            .expect_err(sql);
        assert!(err.to_string().contains(needle), "{sql}: {err}");
        assert!(!err.to_string().contains('\n'), "{sql}: {err}");
    }
    assert_eq!(live.live_rows(), Vec::<Value>::new());

    // A subscription id is the connection's, whatever the table: a second one is refused
    // and the first lives on.
    let first = live.subscribe(
        &conn,
        "same",
        "SELECT * FROM app.cfg",
        SubscribeOptions::default(),
    );
    let again = live
        .rt
        .block_on(live.engine.subscribe(
            &conn,
            "same",
            "SELECT * FROM app.notes",
            &SubscribeOptions::default(),
        ))
        .expect_err("a second subscription under one id");
    assert!(again.to_string().contains("already exists"), "{again}");
    let rows = live.live_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["live_id"], first.live_id.as_str());
}

/// Subscriptions that require `column = value` skip changes without that value before their
/// predicate runs; rows that move in and out of the value still arrive as inserts and deletes.
#[test]
fn equality_subscriptions_see_rows_move_in_and_out_of_their_value() {
    let live = Live::new();
    let mut conn = live.engine.connect_live("alice");
    live.subscribe(
        &conn,
        "five",
        "SELECT id, n FROM app.notes WHERE n = 5 AND body <> 'skip'",
        SubscribeOptions::default(),
    );
    let mut other = live.engine.connect_live("alice");
    live.subscribe(
        &other,
        "any",
        "SELECT id FROM app.notes WHERE n = 5 OR body = 'x'",
        SubscribeOptions::default(),
    );

    live.sql(
        Some("alice"),
        "INSERT INTO app.notes VALUES (1, 'a', 4), (2, 'x', 6)",
    );
    let d = live.next(&mut other).expect("OR matches the body");
    assert_eq!(d.rows.len(), 1);
    live.quiet(&mut conn);
    live.sql(Some("alice"), "UPDATE app.notes SET n = 5 WHERE id = 1");
    let d = live.next(&mut conn).expect("moved into n = 5");
    assert_eq!(
        (d.change_type, Value::Object(d.rows[0].clone())),
        (ChangeType::Insert, json!({"id": 1, "n": 5}))
    );
    live.sql(Some("alice"), "UPDATE app.notes SET n = 7 WHERE id = 1");
    let d = live.next(&mut conn).expect("moved out of n = 5");
    assert_eq!(
        (d.change_type, Value::Object(d.rows[0].clone())),
        (ChangeType::Delete, json!({"id": 1, "n": 5}))
    );
    live.sql(Some("alice"), "INSERT INTO app.notes VALUES (3, 'skip', 5)");
    live.quiet(&mut conn);
}

/// A stream row evicted by its table's TTL is a delete for a subscriber that asked to see
/// evictions, and nothing for one that did not.
#[test]
fn evictions_are_deletes_only_for_subscribers_that_ask() {
    let live = Live::new();
    live.sql(
        None,
        "CREATE STREAM TABLE app.ev (id BIGINT PRIMARY KEY, kind TEXT) WITH (TTL_SECONDS = 1)",
    );
    let mut asked = live.engine.connect_live("root");
    live.subscribe(
        &asked,
        "e",
        "SELECT id, kind FROM app.ev",
        SubscribeOptions {
            evictions: true,
            ..SubscribeOptions::default()
        },
    );
    let mut plain = live.engine.connect_live("root");
    live.subscribe(
        &plain,
        "p",
        "SELECT id, kind FROM app.ev",
        SubscribeOptions::default(),
    );
    live.sql(None, "INSERT INTO app.ev VALUES (1, 'click')");
    for conn in [&mut asked, &mut plain] {
        let d = live.next(conn).expect("insert");
        assert_eq!(d.change_type, ChangeType::Insert);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let evicted = live
        .rt
        .block_on(live.engine.evict_streams())
        .expect("evict");
    assert_eq!(evicted, 1, "the row had expired");
    let d = live.next(&mut asked).expect("the eviction");
    assert_eq!(
        (d.change_type, Value::Object(d.rows[0].clone())),
        (ChangeType::Delete, json!({"id": 1, "kind": "click"}))
    );
    live.quiet(&mut plain);
}
