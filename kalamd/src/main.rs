//! `kalamd`: the KalamDB server. See `specs/http.md` and `specs/config.md`.

mod auth;
mod background;
mod config;
mod error;
mod http;
mod logging;
mod metrics;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(config, config_path, log))
}

/// Opens the data directory, creating it first when it does not exist or is empty.
fn open_engine(config: &Config) -> Result<Engine, DaemonError> {
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
    notify(&[NotifyState::Status("opening the data directory")]);
    tracing::info!(data_dir = %config.data_dir.display(), "opening");
    let engine = open_engine(&config)?;
    let purged = engine.purge_live_queries()?;
    if purged > 0 {
        tracing::info!(rows = purged, "purged stale live queries");
    }
    let tokens = auth::Tokens::new(&config.auth.tokens, &config.data_dir)?;
    let state = AppState {
        engine: engine.clone(),
        tokens: Arc::new(tokens),
        metrics: metrics::Metrics::default(),
        phase: Arc::new(AtomicU8::new(Phase::Opening as u8)),
    };
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
    let app = http::router(
        state.clone(),
        config.limits.max_body_bytes,
        Duration::from_secs(config.limits.request_timeout_seconds),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = background::spawn(engine.clone(), &config, stop_rx);
    state.set_phase(Phase::Ready);
    tracing::info!(listen = %local, "ready");
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);

    let mut term =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    let drain_state = state.clone();
    let (drained_tx, mut drained_rx) = watch::channel(false);
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload(config_path.as_deref(), &log),
            }
        }
        tracing::info!("shutting down: draining requests and jobs");
        notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
        drain_state.set_phase(Phase::Draining);
        let _ = stop_tx.send(true);
        let _ = drained_tx.send(true);
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);

    let server = tokio::spawn(async move { server.await });
    // Wait for the shutdown signal, then give requests and jobs the grace period.
    let _ = drained_rx.changed().await;
    let grace = Duration::from_secs(config.shutdown.grace_seconds);
    let drained = tokio::time::timeout(grace, async {
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
            drop(engine); // closes RocksDB cleanly
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
        Ok(c) => tracing::info!(level = %c.logging.level, "configuration reloaded"),
        Err(e) => tracing::error!(error = %e, "reload refused; keeping the running configuration"),
    }
}
