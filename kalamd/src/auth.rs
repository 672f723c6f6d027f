//! Bearer tokens from the configuration.
//!
//! With no tokens configured, kalamd never runs open: it creates (once) an admin token in
//! `{data_dir}/admin.token`, readable by its owner only, and accepts that.

use std::collections::HashMap;
use std::path::Path;

use kalamdb_core::Session;

use crate::config::{Role, Token};
use crate::error::DaemonError;

pub const TOKEN_FILE: &str = "admin.token";
/// The header with which an admin acts as another user.
pub const ACT_AS_HEADER: &str = "x-kalam-user-id";

#[derive(Debug, Clone)]
pub struct Tokens {
    by_token: HashMap<String, (String, Role)>,
}

impl Tokens {
    pub fn new(configured: &[Token], data_dir: &Path) -> Result<Tokens, DaemonError> {
        let mut by_token: HashMap<String, (String, Role)> = configured
            .iter()
            .map(|t| (t.token.clone(), (t.user_id.clone(), t.role)))
            .collect();
        if by_token.is_empty() {
            by_token.insert(
                bootstrap_token(data_dir)?,
                (kalamdb_core::ADMIN_USER_ID.to_string(), Role::Admin),
            );
        }
        Ok(Tokens { by_token })
    }

    /// The session for an `Authorization` header value (and an optional act-as user id).
    pub fn session(
        &self,
        authorization: Option<&str>,
        act_as: Option<&str>,
    ) -> Result<Session, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or(AuthError::Missing)?
            .trim();
        let (user_id, role) = self.by_token.get(token).ok_or(AuthError::Invalid)?;
        match (role, act_as) {
            (Role::Admin, Some(other)) => Ok(Session {
                user_id: other.to_string(),
                role: Role::Admin,
            }),
            (Role::Admin, None) => Ok(Session {
                user_id: user_id.clone(),
                role: Role::Admin,
            }),
            (Role::User, None) => Ok(Session::user(user_id.clone())),
            (Role::User, Some(_)) => Err(AuthError::ActAsForbidden),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
    ActAsForbidden,
}

fn bootstrap_token(data_dir: &Path) -> Result<String, DaemonError> {
    let path = data_dir.join(TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_string();
        if t.len() >= 16 {
            return Ok(t);
        }
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    // Private (0600), and complete or absent: a crash never leaves a truncated token.
    kalamdb_core::fs::write_atomically(data_dir, &path, format!("{token}\n").as_bytes(), 0o600)
        .map_err(|e| DaemonError::Runtime(format!("cannot write {}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), "no auth.tokens configured: created an admin token");
    Ok(token)
}
