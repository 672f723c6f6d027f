use serde::{Deserialize, Serialize};

use crate::SystemRecord;
use crate::tolerant;

/// `system.users`: key `user:{username}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: String,
    pub username: String,
    #[serde(default, deserialize_with = "tolerant::string_or_empty")]
    pub email: String,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
}

impl SystemRecord for UserRecord {
    const TABLE: &'static str = "users";
    const CF: &'static str = "system_users";
    const KEY_PREFIX: &'static str = "user:";
    fn id(&self) -> String {
        self.username.clone()
    }
}
