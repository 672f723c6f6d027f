//! Live queries over a WebSocket (`GET /v1/ws`, upgraded by `crate::http`), in upstream
//! KalamDB's message shapes (`specs/http.md`). One engine `Connection` per socket; its
//! subscriptions end with it.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use kalamdb_core::live::{Closed, Connection, Delivery, Event, SubscribeOptions};
use kalamdb_core::{CoreError, Engine, Initial};
use serde::Deserialize;
use serde_json::{Value, json};

/// Rows per `initial_data_batch` message.
const BATCH_ROWS: usize = 1000;
/// The largest message a client may send.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The close code of a server going away (RFC 6455).
const GOING_AWAY: u16 = 1001;

/// A client's message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Subscribe { subscription: Subscription },
    Unsubscribe { subscription_id: String },
    Ping,
}

#[derive(Debug, Deserialize)]
struct Subscription {
    id: String,
    sql: String,
    #[serde(default)]
    options: SubscribeOptions,
}

/// Serves one upgraded socket for `user_id` until either side closes it.
pub async fn serve(engine: Engine, user_id: String, mut socket: WebSocket) {
    let mut conn = engine.connect_live(&user_id);
    loop {
        let sent = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    answer(&engine, &conn, &mut socket, text.as_str()).await
                }
                Some(Ok(Message::Binary(_))) => {
                    send(&mut socket, error(None, "bad_request", "messages are JSON text")).await
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => Ok(()),
            },
            event = conn.next() => match event {
                Event::Change(delivery) => send(&mut socket, change(&delivery)).await,
                Event::Ended(closed) => {
                    let mut sent = Ok(());
                    for c in closed {
                        sent = sent.and(send(&mut socket, ended(&c)).await);
                    }
                    sent
                }
                Event::Shutdown => {
                    let frame = CloseFrame {
                        code: GOING_AWAY,
                        reason: "kalamd is shutting down; reconnect and subscribe with options.from".into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
        };
        if sent.is_err() {
            break;
        }
    }
    // Dropping the connection ends its subscriptions and deletes their rows.
    drop(conn);
}

/// Answers one client message.
async fn answer(
    engine: &Engine,
    conn: &Connection,
    socket: &mut WebSocket,
    text: &str,
) -> Result<(), axum::Error> {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => m,
        Err(e) => {
            return send(
                socket,
                error(
                    None,
                    "bad_request",
                    &format!(
                        "not a client message ({e}); send {{\"type\":\"subscribe\",\"subscription\":{{\"id\":...,\"sql\":...}}}}, unsubscribe or ping"
                    ),
                ),
            )
            .await;
        }
    };
    match message {
        ClientMessage::Ping => send(socket, json!({"type": "pong"})).await,
        ClientMessage::Unsubscribe { subscription_id } => {
            match engine.unsubscribe(conn, &subscription_id) {
                Ok(()) => {
                    send(
                        socket,
                        json!({"type": "unsubscribed", "subscription_id": subscription_id}),
                    )
                    .await
                }
                Err(e) => send(socket, failure(Some(&subscription_id), &e)).await,
            }
        }
        ClientMessage::Subscribe { subscription } => {
            let id = subscription.id.clone();
            match engine
                .subscribe(conn, &id, &subscription.sql, &subscription.options)
                .await
            {
                Ok(initial) => send_initial(socket, &id, initial).await,
                Err(e) => send(socket, failure(Some(&id), &e)).await,
            }
        }
    }
}

/// The acknowledgement, the initial rows in batches, then any changes replayed.
async fn send_initial(
    socket: &mut WebSocket,
    id: &str,
    initial: Initial,
) -> Result<(), axum::Error> {
    send(
        socket,
        json!({
            "type": "subscription_ack",
            "subscription_id": id,
            "live_id": initial.live_id,
            "total_rows": initial.rows.len(),
            "columns": initial.columns,
            "resumed": initial.replayed.is_some(),
        }),
    )
    .await?;
    let batches: Vec<&[kalamdb_core::Row]> = if initial.rows.is_empty() {
        vec![&[]]
    } else {
        initial.rows.chunks(BATCH_ROWS).collect()
    };
    let last = batches.len().saturating_sub(1);
    for (n, rows) in batches.into_iter().enumerate() {
        send(
            socket,
            json!({
                "type": "initial_data_batch",
                "subscription_id": id,
                "rows": rows,
                "batch_control": {
                    "batch_num": n,
                    "has_more": n < last,
                    "status": if n < last { "loading" } else { "ready" },
                },
            }),
        )
        .await?;
    }
    for delivery in initial.replayed.unwrap_or_default() {
        send(socket, change(&delivery)).await?;
    }
    Ok(())
}

fn change(d: &Delivery) -> Value {
    json!({
        "type": "change",
        "subscription_id": d.subscription_id,
        "change_type": d.change_type,
        "seq": d.seq,
        "rows": d.rows,
        "old_values": d.old_values,
    })
}

fn error(subscription_id: Option<&str>, code: &str, message: &str) -> Value {
    json!({"type": "error", "subscription_id": subscription_id, "code": code, "message": message})
}

fn failure(subscription_id: Option<&str>, e: &CoreError) -> Value {
    error(subscription_id, e.kind().code(), &e.to_string())
}

fn ended(closed: &Closed) -> Value {
    error(Some(&closed.subscription_id), closed.code, &closed.message)
}

async fn send(socket: &mut WebSocket, message: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(message.to_string().into())).await
}
