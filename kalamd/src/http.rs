//! The HTTP API: `POST /v1/api/sql`, `GET /v1/ws` (live queries, see `crate::live`),
//! `GET /health`, `GET /ready`, `GET /metrics`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kalamdb_core::api::{ApiError, SqlRequest, SqlResponse, WireCode};
use kalamdb_core::{CoreError, Engine, ErrorKind, Session};
use serde_json::json;

use crate::auth::{ACT_AS_HEADER, AuthError, Tokens};
use crate::background::Health;
use crate::metrics::Metrics;

/// What `/ready` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Opening = 0,
    Ready = 1,
    Draining = 2,
}

#[derive(Clone)]
pub struct AppState {
    /// Set once the data directory is open; until then only /health and /ready answer.
    pub engine: Arc<OnceLock<Engine>>,
    /// Set with the engine: the bootstrap token lives in the data directory.
    pub tokens: Arc<OnceLock<Tokens>>,
    pub metrics: Metrics,
    pub phase: Arc<AtomicU8>,
    /// The background loops' health, for `/ready` and `/metrics`.
    pub health: Arc<Health>,
}

impl AppState {
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }
    /// The engine, while ready.
    fn serving_engine(&self) -> Option<&Engine> {
        if self.phase() == Phase::Ready {
            self.engine.get()
        } else {
            None
        }
    }

    /// The 503 to answer while opening or draining.
    fn unavailable(&self) -> Response {
        let why = match self.phase() {
            Phase::Draining => "kalamd is shutting down",
            _ => "kalamd is opening the data directory",
        };
        error(WireCode::Unavailable, why)
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            1 => Phase::Ready,
            2 => Phase::Draining,
            _ => Phase::Opening,
        }
    }
}

pub fn router(state: AppState, max_body_bytes: usize, timeout: Duration) -> Router {
    Router::new()
        .route("/v1/api/sql", post(sql))
        .route("/v1/ws", get(live))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(
                WireCode::Kind(ErrorKind::NotFound),
                "no such endpoint; see specs/http.md",
            )
        })
        // Inside `observe`, so a 408 is counted in the metrics like any other answer.
        .layer(middleware::from_fn_with_state(timeout, deadline))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Answers 408, in the same JSON shape as every other error, when a request runs longer than
/// `limits.request_timeout_seconds`. Work that must not stop half-way (a backup) runs on its own
/// thread and goes on.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            WireCode::Timeout,
            &format!(
                "the request ran longer than limits.request_timeout_seconds ({} s); raise it, or send less work per request",
                limit.as_secs()
            ),
        ),
    }
}

/// An error answer: the code's status, in the one error shape (`specs/http.md`).
fn error(code: WireCode, message: &str) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = SqlResponse::Error {
        error: ApiError::new(code, message),
    };
    (status, Json(body)).into_response()
}

fn core_error(e: &CoreError) -> Response {
    error(WireCode::Kind(e.kind()), &e.to_string())
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Session, AuthError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let act_as = headers
        .get(ACT_AS_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    // Until the tokens are loaded nothing is served, so this reads as "invalid" only in theory.
    state
        .tokens
        .get()
        .ok_or(AuthError::Invalid)?
        .session(auth, act_as)
}

/// The engine and the caller's session, or the answer to give instead (503 while opening or
/// draining, 401/403 for a bad token).
fn authenticate_request(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Engine, Session), Box<Response>> {
    let Some(engine) = state.serving_engine().cloned() else {
        return Err(Box::new(state.unavailable()));
    };
    let session = authenticate(state, headers).map_err(|e| Box::new(auth_error(e)))?;
    Ok((engine, session))
}

/// `GET /v1/ws`: authenticates the upgrade, then hands the socket to `crate::live`.
async fn live(State(state): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let (engine, session) = match authenticate_request(&state, &headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    ws.max_message_size(crate::live::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| crate::live::serve(engine, session.user_id, socket))
}

fn auth_error(e: AuthError) -> Response {
    match e {
        AuthError::Missing => error(WireCode::Unauthorized, "send Authorization: Bearer <token>"),
        AuthError::Invalid => error(WireCode::Unauthorized, "the bearer token is not valid"),
        AuthError::ActAsForbidden => error(
            WireCode::Kind(ErrorKind::PermissionDenied),
            "only admin tokens may act as another user (X-Kalam-User-Id)",
        ),
    }
}

async fn sql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (engine, session) = match authenticate_request(&state, &headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                WireCode::TooLarge,
                "the body is larger than limits.max_body_bytes; send fewer statements per request",
            );
        }
        Err(e) => return error(WireCode::Kind(ErrorKind::BadInput), &e.body_text()),
    };
    let Ok(SqlRequest { sql }) = serde_json::from_slice::<SqlRequest>(&body) else {
        return error(
            WireCode::Kind(ErrorKind::BadInput),
            r#"the body must be JSON: {"sql": "..."}"#,
        );
    };
    let started = Instant::now();
    match engine.execute(&session, &sql).await {
        Ok(results) => {
            let execution_time_ms =
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            Json(SqlResponse::Success {
                results,
                execution_time_ms,
            })
            .into_response()
        }
        Err(e) => core_error(&e),
    }
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.phase() {
        Phase::Ready => {
            // Queries are still served while a background loop is failing, so this stays 200:
            // the body names each failing loop and its error until a later run succeeds.
            let mut failing: serde_json::Map<String, serde_json::Value> = state
                .health
                .down()
                .into_iter()
                .map(|(name, why)| (name.to_string(), json!(why)))
                .collect();
            if let Some(why) = state.engine.get().and_then(unreachable_storage) {
                failing.insert("storage".into(), json!(why));
            }
            if failing.is_empty() {
                Json(json!({"status": "ready"})).into_response()
            } else {
                Json(json!({"status": "degraded", "failing": failing})).into_response()
            }
        }
        Phase::Opening => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "opening"})),
        )
            .into_response(),
        Phase::Draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
            .into_response(),
    }
}

/// The storage locations tables use whose credentials are not configured, for `/ready`.
fn unreachable_storage(engine: &Engine) -> Option<String> {
    let unreachable = match engine.catalog().unreachable_locations() {
        Ok(u) => u,
        Err(e) => return Some(format!("cannot read the storage locations: {e}")),
    };
    let each: Vec<String> = unreachable
        .into_iter()
        .map(|(l, why, tables)| {
            format!(
                "location '{}' ({}) cannot be reached: {why}; {} serve only their rows in RocksDB",
                l.location_name,
                l.path,
                tables.join(", ")
            )
        })
        .collect();
    (!each.is_empty()).then(|| each.join("; "))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(engine) = state.engine.get().cloned() else {
        return state.unavailable();
    };
    if let Err(e) = authenticate(&state, &headers) {
        return auth_error(e);
    }
    let (metrics, health) = (state.metrics.clone(), state.health.clone());
    let text = tokio::task::spawn_blocking(move || metrics.render(&engine, &health))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.observe(
        &method,
        &path,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
