//! Live queries against the release kalamd: change latency (from the start of the INSERT
//! request to the change's receipt on a subscriber's WebSocket) with 1, 100 and 10,000
//! subscriptions spread over up to 100 connections, and the INSERT rate with those
//! subscriptions against the rate with none. Each subscription watches its own room
//! (`WHERE room = 'rN'`) and every INSERT goes to one subscribed room, so every change is
//! delivered once while kalamd checks it against every subscription of the table. Levels run
//! in turn within each round, on a fresh table each; `repeat` rounds; medians.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::http::{TOKEN, agent, post, start_kalamd};
use crate::report::{emit, median, percentile};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct Level {
    latencies: Vec<Duration>,
    inserts_per_s: f64,
}

/// One level: `subs` subscriptions on table `b.{table}`, then `inserts` INSERTs.
async fn level(port: u16, table: &str, subs: usize, inserts: usize) -> Result<Level, String> {
    let http = agent();
    post(
        &http,
        port,
        "root",
        &format!(
            "CREATE SHARED TABLE b.{table} (id BIGINT PRIMARY KEY, room TEXT, sent_us BIGINT)"
        ),
    )?;
    let connections = subs.clamp(1, 100);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(inserts)));
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    for c in 0..connections.min(subs) {
        let mut request = format!("ws://127.0.0.1:{port}/v1/ws")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {TOKEN}")
                .parse()
                .map_err(|_| "bad header".to_string())?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| e.to_string())?;
        // This connection's rooms: c, c + connections, ...
        let rooms: Vec<usize> = (c..subs).step_by(connections).collect();
        for room in &rooms {
            let m = json!({"type": "subscribe", "subscription": {"id": format!("r{room}"),
                "sql": format!("SELECT id, sent_us FROM b.{table} WHERE room = 'r{room}'")}});
            ws.send(Message::Text(m.to_string().into()))
                .await
                .map_err(|e| e.to_string())?;
        }
        // The ack and the (empty) initial batch of each.
        let mut ready = 0;
        while ready < rooms.len() {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                return Err("a subscriber's socket closed".into());
            };
            let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            match v["type"].as_str() {
                Some("initial_data_batch") => ready += 1,
                Some("error") => return Err(format!("subscribe refused: {v}")),
                _ => {}
            }
        }
        let (latencies, received) = (latencies.clone(), received.clone());
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let now = now_us();
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                if v["type"] == "change" {
                    for row in v["rows"].as_array().into_iter().flatten() {
                        let sent = row["sent_us"].as_u64().unwrap_or(now);
                        if let Ok(mut l) = latencies.lock() {
                            l.push(Duration::from_micros(now.saturating_sub(sent)));
                        }
                        received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // The writer, one INSERT at a time, each into the next subscribed room.
    let table_name = table.to_string();
    let rate = tokio::task::spawn_blocking(move || -> Result<f64, String> {
        let http = agent();
        let started = Instant::now();
        for i in 0..inserts {
            let room = i % subs.max(1);
            post(
                &http,
                port,
                "root",
                &format!(
                    "INSERT INTO b.{table_name} VALUES ({i}, 'r{room}', {})",
                    now_us()
                ),
            )?;
        }
        Ok(inserts as f64 / started.elapsed().as_secs_f64().max(1e-9))
    })
    .await
    .map_err(|e| e.to_string())??;
    let expected = if subs == 0 { 0 } else { inserts };
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(std::sync::atomic::Ordering::Relaxed) < expected {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {expected} changes arrived",
                received.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for r in readers {
        r.abort();
    }
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort();
    Ok(Level {
        latencies,
        inserts_per_s: rate,
    })
}

pub async fn run(levels: &[usize], inserts: usize, repeat: usize) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (_kalamd, port) = start_kalamd(&tmp.path().join("data"))?;
    post(&agent(), port, "root", "CREATE NAMESPACE b")?;
    // Level 0: no subscriber, the baseline INSERT rate.
    let all: Vec<usize> = std::iter::once(0).chain(levels.iter().copied()).collect();
    let mut results: Vec<Vec<Level>> = all.iter().map(|_| Vec::new()).collect();
    for round in 0..repeat.max(1) {
        for (i, subs) in all.iter().enumerate() {
            let table = format!("m{round}_{subs}");
            results[i].push(level(port, &table, *subs, inserts).await?);
        }
    }
    let baseline = median(
        &results[0]
            .iter()
            .map(|l| l.inserts_per_s)
            .collect::<Vec<_>>(),
    );
    let mut figures = serde_json::Map::new();
    figures.insert("inserts_per_level".into(), inserts.into());
    figures.insert("repeat".into(), repeat.into());
    figures.insert("baseline_inserts_per_s".into(), baseline.round().into());
    println!(
        "live: {inserts} INSERTs per level, {} rounds; no subscriber: {baseline:.0} INSERT/s",
        repeat.max(1)
    );
    for (i, subs) in all.iter().enumerate().skip(1) {
        let p = |q| {
            median(
                &results[i]
                    .iter()
                    .map(|l| percentile(&l.latencies, q).as_secs_f64() * 1e3)
                    .collect::<Vec<_>>(),
            )
        };
        let rate = median(
            &results[i]
                .iter()
                .map(|l| l.inserts_per_s)
                .collect::<Vec<_>>(),
        );
        let (p50, p99) = (p(50.0), p(99.0));
        println!(
            "  {subs:>6} subscriptions: change latency p50 {p50:>7.2} ms  p99 {p99:>7.2} ms; {rate:>7.0} INSERT/s ({:.2} of the rate with none)",
            rate / baseline.max(1e-9)
        );
        figures.insert(format!("subs_{subs}_p50_ms"), p50.into());
        figures.insert(format!("subs_{subs}_p99_ms"), p99.into());
        figures.insert(format!("subs_{subs}_inserts_per_s"), rate.round().into());
        figures.insert(
            format!("subs_{subs}_ratio_rate_to_none"),
            (rate / baseline.max(1e-9)).into(),
        );
    }
    emit("live", Value::Object(figures));
    Ok(())
}
