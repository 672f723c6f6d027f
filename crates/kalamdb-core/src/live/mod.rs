//! Live queries: subscriptions to the committed changes of one table.
//!
//! A connection (kalamd's WebSocket, or a test in this process) opens a [`Connection`] and
//! subscribes queries on it. Subscribing registers the query and reads its initial rows under
//! the table's write lock, so every commit is either in the initial rows or delivered as a
//! change, never both and never neither. Each INSERT, UPDATE and DELETE publishes, while it
//! still holds the table's lock (so in commit order), one change to the matching subscribers
//! of that table, each numbered with a sequence that only grows. A connection's buffer is
//! bounded: a subscription whose changes do not fit is closed with an error saying so, and
//! nothing else grows. Each subscription has a row in `system.live_queries` while it lives.
//!
//! This module knows nothing of the engine; `crate::subscribe` adds the `Engine` methods.

mod query;
mod registry;

pub(crate) use query::LiveQuery;
pub(crate) use registry::{Change, ChangeKind, Subscriber, deliver};
pub use registry::{Closed, Connection, Delivery, Event, LiveRegistry, LiveStats};

use serde::Deserialize;

/// What a change did to a subscriber's view of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    Insert,
    Update,
    Delete,
}

/// Changes a connection may hold unsent before the subscription that overflows is closed.
pub const CONNECTION_BUFFER: usize = 1024;

/// What a client may ask of a new subscription.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeOptions {
    /// Start with only the last N of the current rows (in key order).
    #[serde(default)]
    pub last_rows: Option<u64>,
    /// Resume after this sequence: the changes since it instead of the current rows, when
    /// this server still holds all of them.
    #[serde(default)]
    pub from: Option<u64>,
    /// Also receive rows a stream table's TTL or MAX_BUFFER evicts, as deletes.
    #[serde(default)]
    pub evictions: bool,
}
