//! Logs through tracing-subscriber, as text or JSON, with a level that SIGHUP can change.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, Logging};
use crate::error::DaemonError;

/// Changes the log filter at runtime.
pub struct LogHandle(reload::Handle<EnvFilter, tracing_subscriber::Registry>);

impl LogHandle {
    pub fn set_level(&self, level: &str) -> Result<(), DaemonError> {
        let filter = EnvFilter::try_new(level).map_err(|e| {
            DaemonError::Config(format!("logging.level: '{level}' is not a level ({e})"))
        })?;
        self.0
            .reload(filter)
            .map_err(|e| DaemonError::Runtime(e.to_string()))
    }
}

pub fn init(cfg: &Logging) -> Result<LogHandle, DaemonError> {
    let filter = EnvFilter::try_new(&cfg.level)
        .map_err(|e| DaemonError::Config(format!("logging.level: {e}")))?;
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match cfg.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| DaemonError::Runtime(format!("cannot start logging: {e}")))?;
    Ok(LogHandle(handle))
}
