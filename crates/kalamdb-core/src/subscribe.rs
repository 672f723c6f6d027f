//! Live queries on the engine: subscribing (the initial rows, or the changes since a
//! sequence), unsubscribing, and publishing the changes DML commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kalamdb_sql::LiveQueryRecord;
use kalamdb_store::{Row, TableKind, now_ms};

use crate::catalog::TableDef;
use crate::live::{
    Change, ChangeKind, Connection, Delivery, LiveQuery, SubscribeOptions, Subscriber, deliver,
};
use crate::table_data::ReadOptions;
use crate::{CoreError, Engine, Result};

/// What a new subscription starts with.
#[derive(Debug, Clone)]
pub struct Initial {
    pub live_id: String,
    pub columns: Vec<String>,
    /// The current rows (empty when resuming with `from`).
    pub rows: Vec<Row>,
    /// With `from`, when every change since it was still held: those changes, in order.
    pub replayed: Option<Vec<Delivery>>,
}

/// The longest subscription id a client may choose.
const MAX_SUBSCRIPTION_ID: usize = 128;

impl Engine {
    /// Opens a connection for `user_id`'s subscriptions (user tables show that user's rows).
    pub fn connect_live(&self, user_id: &str) -> Connection {
        self.live().connect(user_id)
    }

    /// Subscribes `sql` on `conn` under the client's `subscription_id`.
    pub async fn subscribe(
        &self,
        conn: &Connection,
        subscription_id: &str,
        sql: &str,
        options: &SubscribeOptions,
    ) -> Result<Initial> {
        if subscription_id.is_empty()
            || subscription_id.len() > MAX_SUBSCRIPTION_ID
            || subscription_id.chars().any(char::is_control)
        {
            return Err(CoreError::InvalidInput(format!(
                "a subscription id is 1 to {MAX_SUBSCRIPTION_ID} characters without control characters"
            )));
        }
        if self.storage().is_read_only() {
            return Err(CoreError::InvalidInput(
                "the database is open read-only; subscriptions need a server".into(),
            ));
        }
        let query = LiveQuery::compile(self.catalog(), sql)?;
        let def = query.def.clone();
        let user_id = conn.shared.user_id.clone();
        let live_id = format!(
            "{user_id}-{}-{}-{subscription_id}",
            conn.id(),
            def.qualified()
        );
        let now = now_ms();
        let record = LiveQueryRecord {
            live_id: live_id.clone(),
            connection_id: conn.id().to_string(),
            table_name: def.qualified(),
            query_id: subscription_id.to_string(),
            user_id: user_id.clone(),
            query: sql.to_string(),
            options: serde_json::json!({"last_rows": options.last_rows, "from": options.from,
                "evictions": options.evictions})
            .to_string(),
            created_at: now,
            updated_at: now,
            changes: 0,
            node: "kalamd".into(),
        };
        let sub = Arc::new(Subscriber {
            live_id: live_id.clone(),
            subscription_id: subscription_id.to_string(),
            query,
            conn: conn.shared.clone(),
            evictions: options.evictions,
            sent: AtomicU64::new(0),
        });
        // Under the table's lock: no commit lands between the initial rows and the first
        // change delivered.
        let lock = self.table_lock(def.namespace(), def.name());
        let _guard = lock.exclusive().await;
        crate::blocking::run(|| {
            // A subscription id the connection already uses is refused here, before anything
            // is written; past this point a failure takes the new subscription back out.
            let replay = self.live().add(sub.clone(), options.from)?;
            self.start(&sub, replay, &record, &user_id, options)
                .inspect_err(|_| {
                    self.live().remove(conn.id(), subscription_id);
                })
        })
    }

    /// A registered subscription's row and first rows (or the changes it missed).
    fn start(
        &self,
        sub: &Subscriber,
        replay: Option<Vec<Arc<Change>>>,
        record: &LiveQueryRecord,
        user_id: &str,
        options: &SubscribeOptions,
    ) -> Result<Initial> {
        let def = &sub.query.def;
        self.sql().live_queries().put(record)?;
        let (rows, replayed) = match replay {
            Some(changes) => {
                let mut out = Vec::new();
                for change in changes {
                    if def.kind == TableKind::User && change.user_id != user_id {
                        continue;
                    }
                    if change.kind == ChangeKind::Eviction && !options.evictions {
                        continue;
                    }
                    out.extend(deliver(sub, &change)?);
                }
                sub.sent.fetch_add(out.len() as u64, Ordering::Relaxed);
                (Vec::new(), Some(out))
            }
            None => (self.initial_rows(&sub.query, user_id, options)?, None),
        };
        Ok(Initial {
            live_id: sub.live_id.clone(),
            columns: sub.query.columns(),
            rows,
            replayed,
        })
    }

    /// Ends one of the connection's subscriptions.
    pub fn unsubscribe(&self, conn: &Connection, subscription_id: &str) -> Result<()> {
        match self.live().remove(conn.id(), subscription_id) {
            Some(_) => Ok(()),
            None => Err(CoreError::NotFound(format!(
                "no subscription '{subscription_id}' on this connection"
            ))),
        }
    }

    fn initial_rows(
        &self,
        query: &LiveQuery,
        user_id: &str,
        options: &SubscribeOptions,
    ) -> Result<Vec<Row>> {
        let rows = self.read_rows(&query.def, user_id, &ReadOptions::default())?;
        let refs: Vec<&Row> = rows.iter().map(|(_, r)| r).collect();
        let batch = query.batch(&refs)?;
        let mut rendered = query.render(&batch, &query.mask(&batch)?)?;
        if let Some(n) = options.last_rows.and_then(|n| usize::try_from(n).ok()) {
            let skip = rendered.len().saturating_sub(n);
            rendered.drain(..skip);
        }
        Ok(rendered)
    }

    /// Tells the subscribers that asked that these stream rows were evicted. The caller holds
    /// the table's lock and has deleted them.
    pub(crate) fn publish_evictions(&self, def: &TableDef, rows: Vec<(String, Row)>) {
        // Nothing to write: the rows are gone already. Failures are logged there.
        let _ = self.write_published(def, "", rows, ChangeKind::Eviction, None, |_| Ok(()));
    }

    /// Writes rows and publishes the change to the table's subscribers. The caller holds the
    /// table's write lock. `old`: for updates, the rows before, in the same order.
    pub(crate) fn write_published(
        &self,
        def: &TableDef,
        user_id: &str,
        rows: Vec<(String, Row)>,
        kind: ChangeKind,
        old: Option<Vec<Row>>,
        write: impl FnOnce(Vec<(String, Row)>) -> Result<()>,
    ) -> Result<()> {
        let table = def.qualified();
        if rows.is_empty() || !self.live().records(&table) {
            return write(rows);
        }
        let schema = def.arrow_schema();
        let batch = |rows: Vec<&Row>| crate::cold::arrow_rows::rows_to_batch(&schema, &rows, &[]);
        let new = batch(rows.iter().map(|(_, r)| r).collect());
        let old = old.map(|old| batch(old.iter().collect()));
        write(rows)?;
        // The write is committed: a failure to tell subscribers is logged, not the writer's.
        let published = new.and_then(|new| {
            let old = old.transpose()?;
            self.live()
                .publish(def.kind, user_id, kind, new, old, &table)
        });
        if let Err(e) = published {
            tracing::error!(table = %table, error = %e, "could not publish a change to live queries");
        }
        Ok(())
    }
}
