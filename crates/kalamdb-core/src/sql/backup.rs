//! `BACKUP DATABASE TO '/repo' [DETACHED]`: an online backup by the process that has the
//! database open (kalamd), while writes continue.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::backup::CreateOptions;
use crate::{CoreError, Engine, QueryResult, Result};

impl Engine {
    /// Starts the backup (the repository is locked and the job recorded before this
    /// returns), then waits for it, or with `detached` returns its ids at once. The backup
    /// runs on its own thread either way, so a client that goes away does not stop it.
    pub(crate) async fn backup_statement(
        &self,
        repository: String,
        detached: bool,
    ) -> Result<QueryResult> {
        if !repository.starts_with('/') {
            return Err(CoreError::InvalidInput(format!(
                "BACKUP DATABASE TO '{repository}': give the repository as an absolute path on the server, e.g. '/var/backups/kalamdb'"
            )));
        }
        if detached && self.is_offline() {
            return Err(CoreError::InvalidInput(
                "DETACHED needs a server: an offline backup ends with its process; drop DETACHED, or run `kalamctl backup create`".into(),
            ));
        }
        let started = self.begin_backup(CreateOptions {
            repo: PathBuf::from(&repository),
            ..CreateOptions::default()
        })?;
        let (backup_id, job_id) = (started.backup_id(), started.job_id().to_string());
        let handle = tokio::task::spawn_blocking(move || started.run());
        let mut row = json!({"backup_id": backup_id, "job_id": job_id, "repository": repository});
        if detached {
            row["status"] = "running".into();
        } else {
            let report = handle
                .await
                .map_err(|e| CoreError::Query(format!("the backup thread failed: {e}")))??;
            row["status"] = "completed".into();
            for (k, v) in [
                ("files", report.files),
                ("total_bytes", report.total_bytes),
                ("new_bytes", report.new_bytes),
                ("rows", report.rows),
                ("duration_ms", report.duration_ms),
            ] {
                row[k] = v.into();
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
