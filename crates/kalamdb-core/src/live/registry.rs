//! Who is subscribed to what, and delivering changes to them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_store::{Row, TableKind};
use tokio::sync::{Notify, mpsc};

use super::query::LiveQuery;
use super::{CONNECTION_BUFFER, ChangeType};
use crate::{CoreError, Result};

/// Rows of recent changes kept per subscribed table, for a subscriber that reconnects with
/// the last sequence it saw.
const REPLAY_ROWS: usize = 10_000;

/// A change for one subscription of a connection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    /// The client's id for the subscription.
    pub subscription_id: String,
    pub seq: u64,
    pub change_type: ChangeType,
    pub rows: Vec<Row>,
    /// For updates, the rows as they were, in the same order.
    pub old_values: Vec<Row>,
}

/// A subscription the server ended, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub subscription_id: String,
    /// `killed`, `slow_consumer`, `table_dropped`, `shutdown`.
    pub code: &'static str,
    pub message: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub connections: AtomicU64,
    pub subscriptions: AtomicU64,
    pub changes_sent: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
}

/// What a connection shares with the registry.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub id: String,
    pub user_id: String,
    tx: mpsc::Sender<Delivery>,
    closed: Mutex<Vec<Closed>>,
    notify: Notify,
    shutdown: AtomicBool,
}

/// One connection's end: changes arrive on [`Connection::recv`]; subscriptions the server
/// ended are taken with [`Connection::take_closed`] after [`Connection::closed`] fires.
/// Dropping it ends every subscription it holds.
#[derive(Debug)]
pub struct Connection {
    pub(crate) shared: Arc<ConnShared>,
    rx: mpsc::Receiver<Delivery>,
    pub(crate) registry: Arc<LiveRegistry>,
}

impl Connection {
    pub fn id(&self) -> &str {
        &self.shared.id
    }
    /// The next change; `None` never comes while the connection lives.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
    /// Resolves when the server ended a subscription of this connection, or shuts down.
    pub async fn closed(&self) {
        self.shared.notify.notified().await
    }
    /// The subscriptions the server ended since the last call.
    pub fn take_closed(&self) -> Vec<Closed> {
        std::mem::take(&mut *lock(&self.shared.closed))
    }
    /// Whether the server is shutting down: the connection should close.
    pub fn is_shutdown(&self) -> bool {
        self.shared.shutdown.load(Ordering::SeqCst)
    }
    /// The next thing to tell the client: changes first, in order, then subscriptions the
    /// server ended, or that it is shutting down.
    pub async fn next(&mut self) -> Event {
        tokio::select! {
            biased;
            Some(delivery) = self.rx.recv() => Event::Change(delivery),
            _ = self.shared.notify.notified() => {
                if self.is_shutdown() {
                    Event::Shutdown
                } else {
                    Event::Ended(self.take_closed())
                }
            }
        }
    }
}

/// What [`Connection::next`] brings.
#[derive(Debug)]
pub enum Event {
    Change(Delivery),
    Ended(Vec<Closed>),
    Shutdown,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.registry.disconnect(&self.shared.id);
    }
}

/// One live subscription.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub live_id: String,
    pub subscription_id: String,
    pub query: LiveQuery,
    pub conn: Arc<ConnShared>,
    /// Whether evictions of stream rows are delivered to it, as deletes.
    pub evictions: bool,
    /// Change messages queued to its client so far (`changes` of its `system.live_queries`
    /// row, which the stored record leaves at 0: counting in memory costs no write).
    pub sent: AtomicU64,
}

/// One committed change, as published.
#[derive(Debug)]
pub(crate) struct Change {
    pub seq: u64,
    /// Whose rows (user tables).
    pub user_id: String,
    pub kind: ChangeKind,
    /// The rows as written, in stored form, as a batch of the table's schema.
    pub new: RecordBatch,
    /// For updates: the rows before, in the same order.
    pub old: Option<RecordBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Insert,
    Update,
    Delete,
    /// Stream rows a TTL or MAX_BUFFER evicted: a delete, for subscribers that asked.
    Eviction,
}

/// A table's changes since `since` (every one with a greater sequence), oldest first.
#[derive(Debug)]
struct Recent {
    since: u64,
    changes: VecDeque<Arc<Change>>,
}

#[derive(Debug, Default)]
struct Tables {
    /// `ns.table` → its subscribers.
    subscribers: HashMap<String, Vec<Arc<Subscriber>>>,
    /// `ns.table` → its recent changes.
    recent: HashMap<String, Recent>,
    connections: HashMap<String, Arc<ConnShared>>,
}

/// Called with the live ids of subscriptions that ended.
type Ended = Box<dyn Fn(&[String]) + Send + Sync>;

/// Every subscription of this process.
pub struct LiveRegistry {
    tables: Mutex<Tables>,
    seq: AtomicU64,
    next_connection: AtomicU64,
    pub stats: LiveStats,
    /// Called with the live ids of subscriptions that ended, to delete their rows.
    ended: Mutex<Option<Ended>>,
}

impl std::fmt::Debug for LiveRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRegistry")
            .field("stats", &self.stats)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveRegistry {
    pub(crate) fn new() -> LiveRegistry {
        // Sequences grow across restarts too: they start from the clock (µs).
        let start = u64::try_from(kalamdb_store::now_ms())
            .unwrap_or(0)
            .saturating_mul(1000);
        LiveRegistry {
            tables: Mutex::new(Tables::default()),
            seq: AtomicU64::new(start),
            next_connection: AtomicU64::new(1),
            stats: LiveStats::default(),
            ended: Mutex::new(None),
        }
    }

    /// Sets what to do with the live ids of subscriptions that end (delete their rows).
    pub(crate) fn on_ended(&self, f: Ended) {
        *lock(&self.ended) = Some(f);
    }

    fn ended(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        self.stats
            .subscriptions
            .fetch_sub(ids.len() as u64, Ordering::Relaxed);
        if let Some(f) = lock(&self.ended).as_ref() {
            f(ids);
        }
    }

    pub(crate) fn connect(self: &Arc<Self>, user_id: &str) -> Connection {
        let n = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CONNECTION_BUFFER);
        let shared = Arc::new(ConnShared {
            id: format!("conn{n}"),
            user_id: user_id.to_string(),
            tx,
            closed: Mutex::new(Vec::new()),
            notify: Notify::new(),
            shutdown: AtomicBool::new(false),
        });
        lock(&self.tables)
            .connections
            .insert(shared.id.clone(), shared.clone());
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Connection {
            shared,
            rx,
            registry: self.clone(),
        }
    }

    fn disconnect(&self, connection: &str) {
        let ids = {
            let mut t = lock(&self.tables);
            t.connections.remove(connection);
            let mut ids = Vec::new();
            for subs in t.subscribers.values_mut() {
                subs.retain(|s| {
                    let mine = s.conn.id == connection;
                    if mine {
                        ids.push(s.live_id.clone());
                    }
                    !mine
                });
            }
            ids
        };
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        self.ended(&ids);
    }

    /// Registers a subscriber, refusing a subscription id its connection already uses; with
    /// `from`, returns the recent changes after it when none is missing since (`None` when
    /// some are: the caller sends the current rows instead).
    pub(crate) fn add(
        &self,
        sub: Arc<Subscriber>,
        from: Option<u64>,
    ) -> Result<Option<Vec<Arc<Change>>>> {
        let table = sub.query.def.qualified();
        let mut t = lock(&self.tables);
        if t.subscribers
            .values()
            .flatten()
            .any(|s| s.conn.id == sub.conn.id && s.subscription_id == sub.subscription_id)
        {
            return Err(CoreError::AlreadyExists(format!(
                "subscription '{}' already exists on this connection; unsubscribe it first or pick another id",
                sub.subscription_id
            )));
        }
        t.subscribers.entry(table.clone()).or_default().push(sub);
        self.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
        let now = self.seq.load(Ordering::SeqCst);
        let recent = t.recent.entry(table).or_insert_with(|| Recent {
            since: now,
            changes: VecDeque::new(),
        });
        // Every change after `from` is kept only if the record began at or before it.
        Ok(from.filter(|from| *from >= recent.since).map(|from| {
            recent
                .changes
                .iter()
                .filter(|c| c.seq > from)
                .cloned()
                .collect()
        }))
    }

    /// Sets `changes` of each record of a live subscription of this process to the change
    /// messages sent to it so far (the stored rows keep 0: counting costs no write).
    pub(crate) fn fill_changes(&self, records: &mut [kalamdb_sql::LiveQueryRecord]) {
        let sent: HashMap<String, u64> = lock(&self.tables)
            .subscribers
            .values()
            .flatten()
            .map(|s| (s.live_id.clone(), s.sent.load(Ordering::Relaxed)))
            .collect();
        for r in records {
            if let Some(&n) = sent.get(&r.live_id) {
                r.changes = i64::try_from(n).unwrap_or(i64::MAX);
            }
        }
    }

    /// Removes one subscription of a connection (by the client's id); its live id, if any.
    pub(crate) fn remove(&self, connection: &str, subscription_id: &str) -> Option<String> {
        let live_id = {
            let mut t = lock(&self.tables);
            let mut found = None;
            for subs in t.subscribers.values_mut() {
                if let Some(i) = subs
                    .iter()
                    .position(|s| s.conn.id == connection && s.subscription_id == subscription_id)
                {
                    found = Some(subs.remove(i).live_id.clone());
                }
            }
            found
        };
        if let Some(id) = &live_id {
            self.ended(std::slice::from_ref(id));
        }
        live_id
    }

    /// Ends subscriptions by live id, telling their clients why. Returns those found.
    pub(crate) fn close(&self, live_ids: &[String], code: &'static str, message: &str) -> usize {
        let closed: Vec<Arc<Subscriber>> = {
            let mut t = lock(&self.tables);
            let mut out = Vec::new();
            for subs in t.subscribers.values_mut() {
                subs.retain(|s| {
                    let hit = live_ids.contains(&s.live_id);
                    if hit {
                        out.push(s.clone());
                    }
                    !hit
                });
            }
            out
        };
        for s in &closed {
            lock(&s.conn.closed).push(Closed {
                subscription_id: s.subscription_id.clone(),
                code,
                message: message.to_string(),
            });
            s.conn.notify.notify_one();
        }
        let ids: Vec<String> = closed.iter().map(|s| s.live_id.clone()).collect();
        self.ended(&ids);
        closed.len()
    }

    /// Tells every connection the server is shutting down.
    pub fn shutdown(&self) {
        let conns: Vec<Arc<ConnShared>> =
            lock(&self.tables).connections.values().cloned().collect();
        for c in conns {
            c.shutdown.store(true, Ordering::SeqCst);
            c.notify.notify_one();
        }
    }

    /// Whether a subscriber of `table` asked to see evictions.
    pub(crate) fn wants_evictions(&self, table: &str) -> bool {
        lock(&self.tables)
            .subscribers
            .get(table)
            .is_some_and(|subs| subs.iter().any(|s| s.evictions))
    }

    /// Whether changes of `table` (`ns.table`) are wanted: it has subscribers, or had some
    /// and keeps its recent changes for their return. Publishing costs nothing otherwise.
    pub(crate) fn records(&self, table: &str) -> bool {
        let t = lock(&self.tables);
        t.recent.contains_key(table) || t.subscribers.get(table).is_some_and(|s| !s.is_empty())
    }

    /// Publishes one committed change of `table` to its subscribers. The caller holds the
    /// table's write lock, so changes of a table are published in commit order.
    pub(crate) fn publish(
        &self,
        kind: TableKind,
        user_id: &str,
        change_kind: ChangeKind,
        new: RecordBatch,
        old: Option<RecordBatch>,
        table: &str,
    ) -> Result<()> {
        let subscribers = {
            let mut t = lock(&self.tables);
            let subs = t.subscribers.get(table).cloned().unwrap_or_default();
            if subs.is_empty() && !t.recent.contains_key(table) {
                return Ok(());
            }
            let change = Arc::new(Change {
                seq: self.seq.fetch_add(1, Ordering::SeqCst).saturating_add(1),
                user_id: user_id.to_string(),
                kind: change_kind,
                new,
                old,
            });
            if let Some(recent) = t.recent.get_mut(table) {
                recent.changes.push_back(change.clone());
                let mut rows: usize = recent.changes.iter().map(|c| c.new.num_rows()).sum();
                while rows > REPLAY_ROWS {
                    match recent.changes.pop_front() {
                        Some(c) => {
                            rows = rows.saturating_sub(c.new.num_rows());
                            recent.since = c.seq;
                        }
                        None => break,
                    }
                }
            }
            subs.into_iter()
                .map(|s| (s, change.clone()))
                .collect::<Vec<_>>()
        };
        let mut overflowed = Vec::new();
        let mut values = ValuesSeen::default();
        for (sub, change) in subscribers {
            if kind == TableKind::User && sub.conn.user_id != change.user_id {
                continue;
            }
            if change.kind == ChangeKind::Eviction && !sub.evictions {
                continue;
            }
            if let Some((column, value)) = &sub.query.required
                && values
                    .of(&change, column)
                    .is_some_and(|seen| !seen.contains(value))
            {
                continue;
            }
            for delivery in deliver(&sub, &change)? {
                if sub.conn.tx.try_send(delivery).is_err() {
                    overflowed.push(sub.live_id.clone());
                    break;
                }
                sub.sent.fetch_add(1, Ordering::Relaxed);
                self.stats.changes_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !overflowed.is_empty() {
            self.stats
                .slow_consumers_closed
                .fetch_add(overflowed.len() as u64, Ordering::Relaxed);
            self.close(
                &overflowed,
                "slow_consumer",
                &format!(
                    "the client fell {CONNECTION_BUFFER} changes behind, so the subscription was closed to keep the server's memory bounded; read faster, then subscribe again with options.from set to the last seq received"
                ),
            );
        }
        Ok(())
    }
}

/// The values of a change's columns (old rows too), as text, computed once per column.
#[derive(Default)]
struct ValuesSeen {
    /// `None`: a column that could not be read as text, which every subscriber must check.
    by_column: HashMap<String, Option<HashSet<String>>>,
}

impl ValuesSeen {
    fn of(&mut self, change: &Change, column: &str) -> Option<&HashSet<String>> {
        self.by_column
            .entry(column.to_string())
            .or_insert_with(|| {
                let mut out = HashSet::new();
                for batch in std::iter::once(&change.new).chain(change.old.as_ref()) {
                    let array = batch.column_by_name(column)?;
                    let text = cast(array, &DataType::Utf8).ok()?;
                    let strings = text.as_any().downcast_ref::<StringArray>()?;
                    out.extend(strings.iter().flatten().map(str::to_string));
                }
                Some(out)
            })
            .as_ref()
    }
}

/// What `change` means to one subscriber: rows that enter its view are inserts, rows that
/// stay in it are updates (with their old values), rows that leave it are deletes. An UPDATE
/// can do all three: one delivery each, updates first.
pub(crate) fn deliver(sub: &Subscriber, change: &Change) -> Result<Vec<Delivery>> {
    let q = &sub.query;
    let new_in = q.mask(&change.new)?;
    let one = |change_type, rows, old_values| Delivery {
        subscription_id: sub.subscription_id.clone(),
        seq: change.seq,
        change_type,
        rows,
        old_values,
    };
    let mut out = Vec::new();
    match (change.kind, &change.old) {
        (ChangeKind::Update, Some(old)) => {
            let old_in = q.mask(old)?;
            let split = |f: fn(bool, bool) -> bool| -> BooleanArray {
                new_in
                    .iter()
                    .zip(old_in.iter())
                    .map(|(n, o)| Some(f(n == Some(true), o == Some(true))))
                    .collect()
            };
            let stayed = split(|n, o| n && o);
            if stayed.true_count() > 0 {
                out.push(one(
                    ChangeType::Update,
                    q.render(&change.new, &stayed)?,
                    q.render(old, &stayed)?,
                ));
            }
            let entered = split(|n, o| n && !o);
            if entered.true_count() > 0 {
                out.push(one(
                    ChangeType::Insert,
                    q.render(&change.new, &entered)?,
                    Vec::new(),
                ));
            }
            let left = split(|n, o| !n && o);
            if left.true_count() > 0 {
                out.push(one(ChangeType::Delete, q.render(old, &left)?, Vec::new()));
            }
        }
        (kind, _) => {
            if new_in.true_count() > 0 {
                let change_type = match kind {
                    ChangeKind::Insert => ChangeType::Insert,
                    ChangeKind::Update => ChangeType::Update,
                    ChangeKind::Delete | ChangeKind::Eviction => ChangeType::Delete,
                };
                out.push(one(
                    change_type,
                    q.render(&change.new, &new_in)?,
                    Vec::new(),
                ));
            }
        }
    }
    Ok(out)
}
