//! The engine: one open data directory, with its RocksDB handle, catalog and table stores.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kalamdb_sql::KalamSql;
use kalamdb_store::{SharedTableStore, Storage, StreamTableStore, UserTableStore};

use crate::Result;
use crate::catalog::Catalog;
use crate::data_dir::{DataDir, DirLock};
use crate::live::LiveRegistry;
use crate::process::ProcessIdentity;
use crate::table_lock::TableLock;

/// How to open a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Read-write, holding the pidfile lock.
    #[default]
    ReadWrite,
    /// Read-only: no lock, nothing written; safe next to a running kalamd.
    ReadOnly,
}

/// Rows per batch file a flush writes, unless set otherwise.
pub const DEFAULT_FLUSH_FILE_ROWS: usize = 100_000;

/// An open data directory. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    dir: DataDir,
    storage: Storage,
    catalog: Catalog,
    users: UserTableStore,
    shared: SharedTableStore,
    streams: StreamTableStore,
    table_locks: Mutex<HashMap<String, Arc<TableLock>>>,
    ddl_lock: tokio::sync::Mutex<()>,
    /// Held shared by whatever adds or removes Parquet files (flush, table deletion), and
    /// exclusively by a backup while it takes its snapshot.
    cold_gate: tokio::sync::RwLock<()>,
    stats: crate::stats::Stats,
    offline: AtomicBool,
    flush_file_rows: AtomicUsize,
    live: Arc<LiveRegistry>,
    // Dropped last: the lock outlives the RocksDB handle.
    lock: Option<DirLock>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Engine {
    /// An engine over an opened RocksDB handle (see `open.rs` for the ways to get one).
    pub(crate) fn assemble(dir: DataDir, storage: Storage, lock: Option<DirLock>) -> Engine {
        let sql = KalamSql::new(storage.clone());
        let live = Arc::new(LiveRegistry::new());
        // A subscription that ends takes its `system.live_queries` row with it.
        let rows = sql.clone();
        live.on_ended(Box::new(move |ids| {
            for id in ids {
                if let Err(e) = rows.live_queries().delete(id) {
                    tracing::warn!(live_id = %id, error = %e, "could not delete a live query's row");
                }
            }
        }));
        Engine {
            inner: Arc::new(Inner {
                catalog: Catalog::new(sql, dir.clone()),
                users: UserTableStore::new(storage.clone()),
                shared: SharedTableStore::new(storage.clone()),
                streams: StreamTableStore::new(storage.clone()),
                dir,
                storage,
                table_locks: Mutex::new(HashMap::new()),
                ddl_lock: tokio::sync::Mutex::new(()),
                cold_gate: tokio::sync::RwLock::new(()),
                stats: crate::stats::Stats::default(),
                offline: AtomicBool::new(false),
                flush_file_rows: AtomicUsize::new(DEFAULT_FLUSH_FILE_ROWS),
                live,
                lock,
            }),
        }
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.inner.dir
    }
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }
    pub fn sql(&self) -> &KalamSql {
        self.inner.catalog.sql()
    }
    pub fn user_store(&self) -> &UserTableStore {
        &self.inner.users
    }
    pub fn shared_store(&self) -> &SharedTableStore {
        &self.inner.shared
    }
    pub fn stream_store(&self) -> &StreamTableStore {
        &self.inner.streams
    }

    /// Marks this engine as opened by an offline tool: no server runs, so live-query rows are
    /// stale by definition.
    pub fn set_offline(&self) {
        self.inner.offline.store(true, Ordering::Relaxed);
    }
    pub fn is_offline(&self) -> bool {
        self.inner.offline.load(Ordering::Relaxed)
    }

    /// The most rows a flush puts in one batch file (files are also cut at about 32 MiB of
    /// row data); a flush holds one file's rows in memory at a time.
    pub fn flush_file_rows(&self) -> usize {
        self.inner.flush_file_rows.load(Ordering::Relaxed)
    }
    /// Sets [`Engine::flush_file_rows`] (at least 1).
    pub fn set_flush_file_rows(&self, rows: usize) {
        self.inner
            .flush_file_rows
            .store(rows.max(1), Ordering::Relaxed);
    }

    /// Whether this engine holds the directory's lock (opened read-write).
    pub fn holds_lock(&self) -> bool {
        self.inner.lock.is_some()
    }

    /// The live process holding the directory's lock: this one when opened read-write.
    pub fn lock_holder(&self) -> Result<Option<ProcessIdentity>> {
        if self.holds_lock() {
            return Ok(Some(crate::process::this_process()));
        }
        DirLock::holder(&self.inner.dir)
    }

    /// This process's live subscriptions.
    pub fn live(&self) -> &Arc<LiveRegistry> {
        &self.inner.live
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &crate::stats::Stats {
        &self.inner.stats
    }

    /// Serialises catalog changes (DDL) within this process.
    pub(crate) async fn ddl_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.ddl_lock.lock().await
    }

    /// The cold-tier gate: flushes and drops hold it shared while they change the cold tier;
    /// a backup's snapshot holds it exclusively while it checkpoints RocksDB and links the
    /// Parquet files, so the two agree. Taken last (`ddl_guard`, then `table_lock`, then this).
    pub fn cold_gate(&self) -> &tokio::sync::RwLock<()> {
        &self.inner.cold_gate
    }

    /// Orders writes and flushes of one table within this process (see [`TableLock`]).
    pub fn table_lock(&self, namespace: &str, table: &str) -> Arc<TableLock> {
        let mut locks = self
            .inner
            .table_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks
            .entry(format!("{namespace}.{table}"))
            .or_default()
            .clone()
    }
}
