//! `kalamd`: the KalamDB server. See `specs/http.md` and `specs/config.md`.

/// mimalloc, not glibc's malloc: allocation-heavy work (a flush, INSERTs) runs 1.2-1.7x as
/// fast with it (`specs/benchmarks.md`, *The allocator*).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod auth;
mod background;
mod config;
mod error;
mod http;
mod live;
mod logging;
mod metrics;

use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;
use kalamdb_core::{Access, Engine};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use config::Config;
use error::DaemonError;
use http::{AppState, Phase};

#[derive(Debug, Parser)]
#[command(name = "kalamd", version, about = "The KalamDB server")]
struct Args {
    /// YAML configuration; without it, embedded defaults (see kalamd.example.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration, print it resolved, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() {
    kalamdb_core::fail::setup();
    // The job types this binary runs beyond the engine's own.
    kalamdb_backup::register();
    let args = Args::parse();
    let env = std::env::vars().collect();
    let code = match Config::load(args.config.as_deref(), &env) {
        Err(e) => {
            eprintln!("kalamd: error: {e}");
            error::exit_code(&e)
        }
        Ok(_) if args.check_config => {
            println!("configuration ok");
            0
        }
        Ok(config) => match run(config, args.config) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!(error = %e, "kalamd stopped");
                eprintln!("kalamd: error: {e}");
                error::exit_code(&e)
            }
        },
    };
    std::process::exit(code);
}

fn notify(states: &[NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(states);
}

fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    let log = logging::init(&config.logging)?;
    kalamdb_core::cold::object::configure(config.storage.credentials.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(config, config_path, log))
}

/// Opens the data directory, creating it first when it does not exist or is empty.
fn open_engine(config: &Config) -> Result<Engine, DaemonError> {
    kalamdb_core::fail::point("kalamd.opening");
    let dir = &config.data_dir;
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            return Err(DaemonError::Runtime(format!(
                "cannot read {}: {e}",
                dir.display()
            )));
        }
    };
    if empty {
        notify(&[NotifyState::Status("initializing a new data directory")]);
        drop(Engine::init(dir, "kalamd")?);
        tracing::info!(data_dir = %dir.display(), "initialized a new data directory");
    }
    Ok(Engine::open_with(
        dir,
        Access::ReadWrite,
        "kalamd",
        config.storage.sync_writes,
    )?)
}

async fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    log: logging::LogHandle,
) -> Result<(), DaemonError> {
    // Bind first: /health and /ready answer (503 "opening") while the directory opens.
    let addr = config.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| DaemonError::Runtime(e.to_string()))?;
    let state = AppState {
        engine: Arc::new(OnceLock::new()),
        tokens: Arc::new(OnceLock::new()),
        metrics: metrics::Metrics::default(),
        phase: Arc::new(AtomicU8::new(Phase::Opening as u8)),
        health: Arc::new(background::Health::default()),
    };
    let app = http::router(
        state.clone(),
        config.limits.max_body_bytes,
        Duration::from_secs(config.limits.request_timeout_seconds),
    );
    let (drain_tx, mut drain_rx) = watch::channel(false);
    let (close_tx, mut close_rx) = watch::channel(false);
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = close_rx.changed().await;
            })
            .into_future(),
    );
    tracing::info!(listen = %local, "listening; opening the data directory");

    notify(&[NotifyState::Status("opening the data directory")]);
    let engine = match open_engine(&config).and_then(|e| Ok((e.purge_live_queries()?, e))) {
        Ok((purged, engine)) => {
            if purged > 0 {
                tracing::info!(rows = purged, "purged stale live queries");
            }
            engine
        }
        Err(e) => {
            let _ = close_tx.send(true);
            let _ = server.await;
            return Err(e);
        }
    };
    // Jobs a crash left part-way (a drop, say) are finished before serving: until then a
    // table of the same name cannot be created again.
    match engine.resume_paused_jobs().await {
        Ok(outcomes) => {
            for (id, outcome) in outcomes {
                match outcome {
                    Ok(_) => tracing::info!(job = %id, "finished a paused job"),
                    Err(e) => {
                        tracing::error!(job = %id, error = %e, "a paused job could not be finished; it stays paused")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list paused jobs"),
    }
    let tokens = match auth::Tokens::new(&config.auth.tokens, &config.data_dir) {
        Ok(t) => t,
        Err(e) => {
            let _ = close_tx.send(true);
            let _ = server.await;
            return Err(e);
        }
    };
    let _ = state.tokens.set(tokens);
    let _ = state.engine.set(engine.clone());
    let workers = background::spawn(
        engine.clone(),
        &config,
        state.health.clone(),
        drain_rx.clone(),
    );
    state.set_phase(Phase::Ready);
    tracing::info!(listen = %local, "ready");
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);

    let mut term =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(config_path.as_deref(), &log),
        }
    }

    // Drain: /ready turns 503 and new SQL is refused; background loops stop at a safe point;
    // after the drain delay the listener closes and in-flight requests finish.
    tracing::info!("shutting down: draining requests and jobs");
    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    state.set_phase(Phase::Draining);
    // Live-query clients get a close frame with the reason; their sockets close before the
    // listener does (a short wait: a client that never reads is not waited for).
    engine.live().shutdown();
    let closing = tokio::time::Instant::now();
    while engine
        .live()
        .stats
        .connections
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && closing.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = drain_tx.send(true);
    let _ = drain_rx.borrow_and_update();
    let grace = Duration::from_secs(config.shutdown.grace_seconds);
    let drained = tokio::time::timeout(grace, async {
        tokio::time::sleep(Duration::from_secs(config.shutdown.drain_delay_seconds)).await;
        let _ = close_tx.send(true);
        let served = server.await;
        for w in workers {
            let _ = w.await;
        }
        served
    })
    .await;
    match drained {
        Ok(Ok(Ok(()))) => {
            drop(state);
            drop(engine); // the last handle: RocksDB closes cleanly, then the lock is released
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(DaemonError::Runtime(format!("server error: {e}"))),
        Ok(Err(e)) => Err(DaemonError::Runtime(format!("server task failed: {e}"))),
        Err(_) => Err(DaemonError::Runtime(format!(
            "requests or jobs still running after shutdown.grace_seconds ({}s)",
            grace.as_secs()
        ))),
    }
}

/// SIGHUP: re-read the configuration and apply what can change at runtime (the log level).
fn reload(path: Option<&std::path::Path>, log: &logging::LogHandle) {
    let env = std::env::vars().collect();
    match Config::load(path, &env).and_then(|c| log.set_level(&c.logging.level).map(|()| c)) {
        Ok(c) => {
            // New or changed credential profiles apply to the next object-store request.
            kalamdb_core::cold::object::configure(c.storage.credentials.clone());
            tracing::info!(level = %c.logging.level, "configuration reloaded");
        }
        Err(e) => tracing::error!(error = %e, "reload refused; keeping the running configuration"),
    }
}
