/// Who runs a statement (and, in kalamd's configuration, what a token may do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May do everything, including DDL and `system.*`; acts on user tables as its user id.
    Admin,
    /// Reads and writes only its own user-table rows, and shared and stream tables; no DDL,
    /// no `system.*`.
    User,
}

/// The context every statement runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub role: Role,
}

/// The user id an admin session acts as when it names no other.
pub const ADMIN_USER_ID: &str = "admin";

impl Session {
    pub fn admin() -> Self {
        Session {
            user_id: ADMIN_USER_ID.to_string(),
            role: Role::Admin,
        }
    }

    pub fn user(user_id: impl Into<String>) -> Self {
        Session {
            user_id: user_id.into(),
            role: Role::User,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
