//! Live queries end to end: real WebSocket connections to the built kalamd on loopback,
//! changes made by other clients over HTTP.

mod common;

use std::time::Duration;

use common::{ADMIN, ALICE, BOB, Daemon};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(d: &Daemon, token: &str) -> Socket {
    let mut request = format!("ws://127.0.0.1:{}/v1/ws", d.port)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("connect")
        .0
}

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message (within 10 s); `None` when the server closed the socket.
async fn next(ws: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")?;
        match message.expect("read") {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("JSON")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Nothing arrives within 300 ms.
async fn quiet(ws: &mut Socket) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
        panic!("unexpected message: {m:?}");
    }
}

/// Subscribes; returns the ack and the initial rows (all batches).
async fn subscribe(ws: &mut Socket, id: &str, sql: &str, options: Value) -> (Value, Vec<Value>) {
    send(
        ws,
        json!({"type": "subscribe", "subscription": {"id": id, "sql": sql, "options": options}}),
    )
    .await;
    let ack = next(ws).await.expect("ack");
    assert_eq!(ack["type"], "subscription_ack", "{ack}");
    let mut rows = Vec::new();
    loop {
        let batch = next(ws).await.expect("batch");
        assert_eq!(batch["type"], "initial_data_batch", "{batch}");
        assert_eq!(batch["subscription_id"], id);
        rows.extend(batch["rows"].as_array().cloned().unwrap_or_default());
        if batch["batch_control"]["has_more"] == false {
            assert_eq!(batch["batch_control"]["status"], "ready", "{batch}");
            break;
        }
    }
    (ack, rows)
}

fn ok(d: &Daemon, token: &str, sql: &str) {
    let (status, body) = d.sql(token, sql);
    assert_eq!(status, 200, "`{sql}`: {body}");
}

fn setup(d: &Daemon) {
    ok(
        d,
        ADMIN,
        "CREATE NAMESPACE app; \
         CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, n INT); \
         CREATE SHARED TABLE app.cfg (k TEXT PRIMARY KEY, v TEXT)",
    );
}

#[test]
fn subscribers_receive_each_change_once_in_order_and_only_their_own() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    setup(&d);
    ok(&d, ALICE, "INSERT INTO app.notes VALUES (1, 'first', 5)");
    runtime().block_on(async {
        let mut alice = connect(&d, ALICE).await;
        let mut bob = connect(&d, BOB).await;
        send(&mut alice, json!({"type": "ping"})).await;
        assert_eq!(next(&mut alice).await.expect("pong")["type"], "pong");

        let (ack, rows) = subscribe(
            &mut alice,
            "s1",
            "SELECT id, body FROM app.notes WHERE n > 2",
            json!({}),
        )
        .await;
        assert_eq!(ack["total_rows"], 1, "{ack}");
        assert_eq!(ack["columns"], json!(["id", "body"]));
        assert_eq!(rows, vec![json!({"id": 1, "body": "first"})]);
        let (_, rows) = subscribe(&mut bob, "b", "SELECT * FROM app.notes", json!({})).await;
        assert!(rows.is_empty(), "bob sees none of alice's rows: {rows:?}");

        // While subscribed, each has a row in system.live_queries.
        let live = d.rows(ADMIN, "SHOW LIVE QUERIES");
        assert_eq!(live.len(), 2, "{live:?}");
        assert!(live.iter().all(|r| r["changes"] == 0), "{live:?}");

        ok(&d, ALICE, "INSERT INTO app.notes VALUES (2, 'second', 9), (3, 'hidden', 0)");
        ok(&d, ALICE, "UPDATE app.notes SET body = 'second!' WHERE id = 2");
        ok(&d, ALICE, "DELETE FROM app.notes WHERE id = 1");
        ok(&d, BOB, "INSERT INTO app.notes VALUES (2, 'bobs', 9)");
        ok(&d, ADMIN, "FLUSH TABLE app.notes");

        let mut seqs = Vec::new();
        let mut got = Vec::new();
        for _ in 0..3 {
            let c = next(&mut alice).await.expect("change");
            assert_eq!(c["type"], "change", "{c}");
            assert_eq!(c["subscription_id"], "s1");
            seqs.push(c["seq"].as_u64().expect("seq"));
            got.push((c["change_type"].clone(), c["rows"].clone(), c["old_values"].clone()));
        }
        assert_eq!(
            got,
            vec![
                (json!("insert"), json!([{"id": 2, "body": "second"}]), json!([])),
                (
                    json!("update"),
                    json!([{"id": 2, "body": "second!"}]),
                    json!([{"id": 2, "body": "second"}])
                ),
                (json!("delete"), json!([{"id": 1, "body": "first"}]), json!([])),
            ]
        );
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        // Nothing more for alice: bob's insert is his, the flush changed nothing.
        quiet(&mut alice).await;
        let c = next(&mut bob).await.expect("bob's change");
        assert_eq!(c["rows"][0]["body"], "bobs", "{c}");
        quiet(&mut bob).await;

        // Each row counts the change messages its subscription was sent: SHOW LIVE QUERIES
        // and SELECT on system.live_queries alike.
        let changes = |sql: &str| -> Vec<(String, serde_json::Value)> {
            let mut rows: Vec<_> = d
                .rows(ADMIN, sql)
                .into_iter()
                .map(|r| (r["user_id"].as_str().unwrap_or("").to_string(), r["changes"].clone()))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows
        };
        let expected = vec![("alice".to_string(), json!(3)), ("bob".to_string(), json!(1))];
        assert_eq!(changes("SHOW LIVE QUERIES"), expected);
        assert_eq!(
            changes("SELECT user_id, changes FROM system.live_queries"),
            expected
        );

        // Unsubscribing ends the subscription and its row.
        send(&mut bob, json!({"type": "unsubscribe", "subscription_id": "b"})).await;
        assert_eq!(next(&mut bob).await.expect("ack")["type"], "unsubscribed");
        assert_eq!(d.rows(ADMIN, "SHOW LIVE QUERIES").len(), 1);

        // A query that cannot be evaluated per change is refused, by message, not by closing.
        send(
            &mut alice,
            json!({"type": "subscribe", "subscription": {"id": "bad", "sql": "SELECT count(*) FROM app.notes"}}),
        )
        .await;
        let e = next(&mut alice).await.expect("error");
        assert_eq!((e["type"].clone(), e["subscription_id"].clone()), (json!("error"), json!("bad")), "{e}");
        assert_eq!(e["code"], "bad_request", "{e}");

        // The metrics count what happened.
        let (_, metrics) = d.get("/metrics", Some(ADMIN));
        assert!(metrics.contains("live_connections 2"), "{metrics}");
        assert!(metrics.contains("live_subscriptions 1"), "{metrics}");
        assert!(metrics.contains("live_changes_sent_total 4"), "{metrics}");

        drop(alice);
        drop(bob);
        // Closing the socket ends its subscriptions and their rows.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !d.rows(ADMIN, "SHOW LIVE QUERIES").is_empty() {
            assert!(std::time::Instant::now() < deadline, "rows outlived their sockets");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn operators_kill_subscriptions_and_drop_force_closes_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    setup(&d);
    runtime().block_on(async {
        let mut ws = connect(&d, ALICE).await;
        let (ack, _) = subscribe(&mut ws, "a", "SELECT * FROM app.cfg", json!({})).await;
        subscribe(
            &mut ws,
            "b",
            "SELECT v FROM app.cfg WHERE k = 'x'",
            json!({}),
        )
        .await;
        let live_id = ack["live_id"].as_str().expect("live id").to_string();

        // A user cannot kill; an admin can, and the client is told.
        let (status, _) = d.sql(ALICE, &format!("KILL LIVE QUERY '{live_id}'"));
        assert_eq!(status, 403);
        ok(&d, ADMIN, &format!("KILL LIVE QUERY '{live_id}'"));
        let e = next(&mut ws).await.expect("killed");
        assert_eq!(
            (
                e["type"].clone(),
                e["subscription_id"].clone(),
                e["code"].clone()
            ),
            (json!("error"), json!("a"), json!("killed")),
            "{e}"
        );

        // DROP is refused while "b" lives, naming it and the ways out.
        let (status, body) = d.sql(ADMIN, "DROP TABLE app.cfg");
        assert_eq!(status, 409, "{body}");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("KILL LIVE QUERY") && message.contains("FORCE"),
            "{message}"
        );
        let (status, body) = d.sql(ADMIN, "DROP TABLE app.cfg FORCE");
        assert_eq!(status, 200, "{body}");
        let e = next(&mut ws).await.expect("dropped");
        assert_eq!(
            (e["subscription_id"].clone(), e["code"].clone()),
            (json!("b"), json!("table_dropped")),
            "{e}"
        );
        let jobs = d.rows(
            ADMIN,
            "SELECT result FROM system.jobs WHERE job_type = 'table_deletion'",
        );
        assert!(
            jobs[0]["result"]
                .as_str()
                .unwrap_or_default()
                .contains("-b"),
            "{jobs:?}"
        );
        assert!(d.rows(ADMIN, "SHOW LIVE QUERIES").is_empty());

        // The operator's tool sees real subscriptions and ends them.
        let (ack, _) = subscribe(&mut ws, "c", "SELECT * FROM app.notes", json!({})).await;
        let live_id = ack["live_id"].as_str().expect("live id").to_string();
        let server = d.url("");
        let kalamctl = |args: &[&str]| {
            let out = std::process::Command::new(common::kalamctl_path())
                .args(["live"])
                .args(args)
                .args(["--server", &server, "--token", ADMIN, "--format", "json"])
                .output()
                .expect("kalamctl");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (code, listed) = kalamctl(&["list"]);
        assert_eq!(code, Some(0), "{listed}");
        let listed: Value = serde_json::from_str(&listed).expect("JSON");
        assert_eq!(
            listed["live_queries"][0]["live_id"],
            live_id.as_str(),
            "{listed}"
        );
        assert_eq!(listed["live_queries"][0]["changes"], 0, "{listed}");
        let table = std::process::Command::new(common::kalamctl_path())
            .args(["live", "list", "--server", &server, "--token", ADMIN])
            .output()
            .expect("kalamctl");
        let table = String::from_utf8_lossy(&table.stdout);
        let header = table.lines().find(|l| l.contains("LIVE ID")).unwrap_or("");
        assert!(
            header.contains("SINCE") && header.contains("CHANGES"),
            "{table}"
        );
        let (code, out) = kalamctl(&["kill", &live_id]);
        assert_eq!(code, Some(0), "{out}");
        let e = next(&mut ws).await.expect("killed by kalamctl");
        assert_eq!(
            (e["subscription_id"].clone(), e["code"].clone()),
            (json!("c"), json!("killed")),
            "{e}"
        );
        let (code, _) = kalamctl(&["kill", &live_id]);
        assert_eq!(code, Some(2), "killing it twice finds nothing");
    });
}

#[test]
fn a_client_that_reconnects_with_its_last_seq_gets_what_it_missed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    setup(&d);
    runtime().block_on(async {
        let mut ws = connect(&d, ALICE).await;
        subscribe(&mut ws, "s", "SELECT k, v FROM app.cfg", json!({})).await;
        ok(&d, ADMIN, "INSERT INTO app.cfg VALUES ('a', '1')");
        let seen = next(&mut ws).await.expect("change")["seq"]
            .as_u64()
            .expect("seq");
        drop(ws);
        ok(&d, ADMIN, "INSERT INTO app.cfg VALUES ('b', '2')");
        ok(&d, ADMIN, "UPDATE app.cfg SET v = '3' WHERE k = 'a'");

        let mut ws = connect(&d, ALICE).await;
        let (ack, rows) = subscribe(
            &mut ws,
            "s",
            "SELECT k, v FROM app.cfg",
            json!({"from": seen}),
        )
        .await;
        assert_eq!(ack["resumed"], true, "{ack}");
        assert!(rows.is_empty());
        let first = next(&mut ws).await.expect("replayed");
        let second = next(&mut ws).await.expect("replayed");
        assert_eq!(
            (first["change_type"].clone(), first["rows"].clone()),
            (json!("insert"), json!([{"k": "b", "v": "2"}]))
        );
        assert_eq!(
            (second["change_type"].clone(), second["rows"].clone()),
            (json!("update"), json!([{"k": "a", "v": "3"}]))
        );
        quiet(&mut ws).await;
        // The replayed changes count as sent to the new subscription.
        let live = d.rows(ADMIN, "SHOW LIVE QUERIES");
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0]["changes"], 2, "{live:?}");
    });
}

#[test]
fn a_slow_consumer_is_closed_and_told_why() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(tmp.path(), "");
    setup(&d);
    let pid = d.pid();
    runtime().block_on(async {
        let mut ws = connect(&d, ALICE).await;
        subscribe(&mut ws, "s", "SELECT * FROM app.cfg", json!({})).await;
        // 3,000 changes of 10 KB each, never read: more than the socket's buffers and the
        // connection's 1,024 changes together.
        let payload = "x".repeat(10_000);
        for batch in 0..30 {
            let statements: Vec<String> = (0..100)
                .map(|i| format!("INSERT INTO app.cfg VALUES ('k{batch}-{i}', '{payload}')"))
                .collect();
            ok(&d, ADMIN, &statements.join("; "));
        }
        let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        // Reading now: the changes that were buffered, then the reason it ended.
        let mut changes = 0;
        let ended = loop {
            let m = next(&mut ws).await.expect("message");
            if m["type"] == "change" {
                changes += 1;
                continue;
            }
            break m;
        };
        assert_eq!(
            (ended["type"].clone(), ended["code"].clone()),
            (json!("error"), json!("slow_consumer")),
            "{ended}"
        );
        assert!(
            changes < 3000,
            "the subscription ended before the last change: {changes}"
        );
        assert!(rss_kib < 512 * 1024, "kalamd's RSS grew to {rss_kib} KiB");
        let (_, metrics) = d.get("/metrics", Some(ADMIN));
        assert!(
            metrics.contains("live_slow_consumers_closed_total 1"),
            "{metrics}"
        );
        assert!(d.rows(ADMIN, "SHOW LIVE QUERIES").is_empty());
    });
}

#[test]
fn sigterm_closes_sockets_with_a_reason_and_kill_9_leaves_no_stale_rows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start(tmp.path(), "shutdown:\n  drain_delay_seconds: 0\n");
    setup(&d);
    runtime().block_on(async {
        let mut ws = connect(&d, ALICE).await;
        subscribe(&mut ws, "s", "SELECT * FROM app.cfg", json!({})).await;
        d.signal(libc::SIGTERM);
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame,
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        let frame = close.expect("a close frame with a reason");
        assert_eq!(u16::from(frame.code), 1001);
        assert!(frame.reason.contains("shutting down"), "{}", frame.reason);
    });
    assert!(d.wait(Duration::from_secs(30)).success());

    // kill -9 with a subscription open: after a restart, no row claims it still lives.
    let mut d = Daemon::start(tmp.path(), "");
    runtime().block_on(async {
        let mut ws = connect(&d, ALICE).await;
        subscribe(&mut ws, "s", "SELECT * FROM app.cfg", json!({})).await;
        assert_eq!(d.rows(ADMIN, "SHOW LIVE QUERIES").len(), 1);
        d.kill9();
    });
    let d = Daemon::start(tmp.path(), "");
    assert!(d.rows(ADMIN, "SHOW LIVE QUERIES").is_empty());
}
