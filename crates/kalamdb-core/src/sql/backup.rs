//! `BACKUP DATABASE TO '/repo'|'s3://bucket/prefix' [CREDENTIALS 'profile'] [DETACHED]`: an
//! online backup by the process that has the database open (kalamd), while writes continue.
//!
//! The engine only parses the statement and runs it on its own thread; the backup itself is
//! `kalamdb-backup`'s, which registers a [`BackupHandler`] (`kalamdb_backup::register`).
//! A process that registered none answers the statement with an error saying so.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::{CoreError, Engine, QueryResult, Result};

/// A backup that has started: its repository is locked and its job recorded.
pub struct StartedBackup {
    pub backup_id: u64,
    pub job_id: String,
    /// Runs it to its end on the calling thread; returns the result row's figures.
    pub run: Box<dyn FnOnce() -> Result<Map<String, Value>> + Send>,
}

/// Starts a backup of `engine` into a repository (an absolute path, or an `s3://` URL
/// reached with the credentials profile `credentials`).
pub trait BackupHandler: Send + Sync {
    fn start(
        &self,
        engine: &Engine,
        repository: &str,
        credentials: Option<&str>,
    ) -> Result<StartedBackup>;
}

static HANDLER: OnceLock<&'static dyn BackupHandler> = OnceLock::new();

/// Registers the process's `BACKUP DATABASE` handler (the first registration stays).
pub fn register_backup_handler(handler: &'static dyn BackupHandler) {
    let _ = HANDLER.set(handler);
}

impl Engine {
    /// Starts the backup (the repository is locked and the job recorded before this
    /// returns), then waits for it, or with `detached` returns its ids at once. The backup
    /// runs on its own thread either way, so a client that goes away does not stop it.
    pub(crate) async fn backup_statement(
        &self,
        repository: String,
        credentials: Option<String>,
        detached: bool,
    ) -> Result<QueryResult> {
        if !repository.starts_with('/') && !repository.starts_with("s3://") {
            return Err(CoreError::InvalidInput(format!(
                "BACKUP DATABASE TO '{repository}': give the repository as an absolute path on the server, e.g. '/var/backups/kalamdb', or an s3://bucket/prefix URL"
            )));
        }
        if detached && self.is_offline() {
            return Err(CoreError::InvalidInput(
                "DETACHED needs a server: an offline backup ends with its process; drop DETACHED, or run `kalamctl backup create`".into(),
            ));
        }
        let handler = HANDLER.get().ok_or_else(|| {
            CoreError::InvalidInput(
                "BACKUP DATABASE is not available in this process (it links no backup support); use kalamd or `kalamctl backup create`".into(),
            )
        })?;
        let started =
            crate::blocking::run(|| handler.start(self, &repository, credentials.as_deref()))?;
        let (backup_id, job_id) = (started.backup_id, started.job_id.clone());
        let handle = tokio::task::spawn_blocking(started.run);
        let mut row = json!({"backup_id": backup_id, "job_id": job_id, "repository": repository});
        if detached {
            row["status"] = "running".into();
        } else {
            let figures = handle
                .await
                .map_err(|e| CoreError::Query(format!("the backup thread failed: {e}")))??;
            row["status"] = "completed".into();
            for (k, v) in figures {
                row[k] = v;
            }
        }
        let Value::Object(map) = row else {
            return Err(CoreError::Query("a result row is not an object".into()));
        };
        let columns: Vec<String> = map.keys().cloned().collect();
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        Ok(QueryResult::rows(&names, vec![map]))
    }
}
