//! The client of kalamd that kalamctl's `--server` commands share: one request type, one
//! response type and one error mapping (`kalamdb_core::api`), never message text.

use std::time::Duration;

use kalamdb_core::QueryResult;
use kalamdb_core::api::{SqlRequest, SqlResponse};
use serde_json::Value;

use crate::exit::{CliError, ExitCode};

pub fn remote(exit: ExitCode, message: &str) -> CliError {
    CliError::Remote {
        exit,
        message: message.to_string(),
    }
}

/// kalamd's `/v1/api/sql`, as kalamctl's `--server` commands use it.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    auth: String,
}

impl Client {
    pub fn new(url: &str, token: &str) -> Client {
        Client {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            url: format!("{}/v1/api/sql", url.trim_end_matches('/')),
            auth: format!("Bearer {token}"),
        }
    }

    /// The first row of the first statement's result (`Null` if none).
    pub fn sql(&self, sql: &str) -> Result<Value, CliError> {
        Ok(self
            .results(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.rows.into_iter().next())
            .map_or(Value::Null, Value::Object))
    }

    /// Every statement's result.
    pub fn results(&self, sql: &str) -> Result<Vec<QueryResult>, CliError> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.auth)
            .send_json(SqlRequest {
                sql: sql.to_string(),
            })
            .map_err(|e| {
                remote(
                    ExitCode::Usage,
                    &format!("cannot reach kalamd at {}: {e}; check --server", self.url),
                )
            })?;
        let status = response.status().as_u16();
        let body: Option<SqlResponse> = response.body_mut().read_json().ok();
        match body {
            Some(SqlResponse::Success { results, .. }) if status == 200 => Ok(results),
            Some(SqlResponse::Error { error }) => Err(remote(
                ExitCode::from_code(error.wire_code().exit_code()),
                &format!("kalamd refused: {}", error.message),
            )),
            _ => Err(remote(
                ExitCode::Aborted,
                &format!(
                    "kalamd answered HTTP {status} without the API's JSON; is --server a kalamd?"
                ),
            )),
        }
    }
}
