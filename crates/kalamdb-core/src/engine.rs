//! The engine: one open data directory, with its RocksDB handle, catalog and table stores.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kalamdb_sql::{FormatState, KalamSql};
use kalamdb_store::{OpenMode, SharedTableStore, Storage, StreamTableStore, UserTableStore};

use crate::catalog::Catalog;
use crate::data_dir::{DataDir, DirLock};
use crate::process::ProcessIdentity;
use crate::{CoreError, Result, jobs};

/// How to open a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Read-write, holding the pidfile lock.
    #[default]
    ReadWrite,
    /// Read-only: no lock, nothing written; safe next to a running kalamd.
    ReadOnly,
}

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
    table_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    ddl_lock: tokio::sync::Mutex<()>,
    /// Held shared by whatever adds or removes Parquet files (flush, table deletion), and
    /// exclusively by a backup while it takes its snapshot.
    cold_gate: tokio::sync::RwLock<()>,
    stats: crate::stats::Stats,
    offline: AtomicBool,
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
    /// Creates a new, empty database in the current format. Refuses a directory that already
    /// holds one.
    pub fn init(root: impl Into<std::path::PathBuf>, who: &str) -> Result<Engine> {
        let dir = DataDir::new(root);
        if dir.layout() == crate::data_dir::Layout::Original {
            // The original engine's database: migrating it is the fix, not a new one.
            return dir
                .check_is_database()
                .and(Err(CoreError::AlreadyInitialized {
                    path: dir.root().display().to_string(),
                }));
        }
        if kalamdb_store::is_database(&dir.rocksdb()) || kalamdb_store::is_database(dir.root()) {
            return Err(CoreError::AlreadyInitialized {
                path: dir.root().display().to_string(),
            });
        }
        crate::fs::create_dir_durable(dir.root())?;
        let lock = DirLock::acquire(&dir, who)?;
        let storage = Storage::open(&dir.rocksdb(), OpenMode::Create)?;
        let sql = KalamSql::new(storage.clone());
        sql.ensure_system_tables()?;
        let engine = Self::assemble(dir, storage, Some(lock));
        engine.inner.catalog.bootstrap()?;
        engine.inner.catalog.sql().write_format_marker()?;
        crate::fs::create_dir_durable(&engine.inner.dir.storage())?;
        // `init` reports a database: its catalog and marker survive a power cut.
        engine.inner.storage.sync_wal()?;
        crate::fs::sync_dir(engine.inner.dir.root())?;
        Ok(engine)
    }

    /// Opens an existing database in the current format.
    ///
    /// Read-write opens take the pidfile lock (naming its holder when refused) and mark jobs
    /// left `running` by a dead process as failed (`abandoned`).
    pub fn open(root: impl Into<std::path::PathBuf>, access: Access, who: &str) -> Result<Engine> {
        Self::open_with(root, access, who, false)
    }

    /// Like [`Engine::open`]; `sync_writes` makes every write fsync the WAL, so acknowledged
    /// writes survive a power cut and not only a process crash.
    pub fn open_with(
        root: impl Into<std::path::PathBuf>,
        access: Access,
        who: &str,
        sync_writes: bool,
    ) -> Result<Engine> {
        Self::open_inner(root, access, who, sync_writes, false)
    }

    /// Opens a restored copy read-write with synced writes, in the current format or the one
    /// before it (a backup taken before an upgrade; the restore migrates it next).
    pub fn open_restored(root: &std::path::Path, who: &str) -> Result<Engine> {
        Self::open_inner(root, Access::ReadWrite, who, true, true)
    }

    fn open_inner(
        root: impl Into<std::path::PathBuf>,
        access: Access,
        who: &str,
        sync_writes: bool,
        allow_format_1: bool,
    ) -> Result<Engine> {
        let dir = DataDir::new(root);
        dir.check_is_database()?;
        let lock = match access {
            Access::ReadWrite => Some(DirLock::acquire(&dir, who)?),
            Access::ReadOnly => None,
        };
        let mode = match access {
            Access::ReadWrite => OpenMode::ReadWrite,
            Access::ReadOnly => OpenMode::ReadOnly,
        };
        let mut storage = Storage::open(&dir.rocksdb(), mode)?;
        storage.set_sync_writes(sync_writes);
        let sql = KalamSql::new(storage.clone());
        match sql.format_state()? {
            FormatState::Older(m) if allow_format_1 && m.format_version == 1 => {}
            _ => check_format(&dir, &sql)?,
        }
        let engine = Self::assemble(dir, storage, lock);
        if access == Access::ReadWrite {
            let cancel = jobs::CancelRequests::new(engine.data_dir());
            let orphaned = jobs::reconcile(engine.sql(), &cancel)?;
            if !orphaned.is_empty() {
                tracing::warn!(
                    jobs = ?orphaned,
                    "jobs left running by a dead process are now paused (resumable) or failed"
                );
            }
        }
        Ok(engine)
    }

    /// Opens a directory to inspect it (`kalamctl verify`): read-only, or read-write with the
    /// lock when `repair`. A missing or unreadable format marker does not refuse the open
    /// (the scan reports it); a newer or older format does. Nothing is reconciled on open:
    /// the scan reports what it finds, and only a repair changes it.
    pub fn open_for_verify(root: impl Into<std::path::PathBuf>, repair: bool) -> Result<Engine> {
        let dir = DataDir::new(root);
        dir.check_is_database()?;
        let lock = if repair {
            Some(DirLock::acquire(&dir, "kalamctl verify --repair")?)
        } else {
            None
        };
        let mode = if repair {
            OpenMode::ReadWrite
        } else {
            OpenMode::ReadOnly
        };
        let storage = Storage::open(&dir.rocksdb(), mode)?;
        match KalamSql::new(storage.clone()).format_state()? {
            FormatState::Unmarked | FormatState::Unreadable(_) => {}
            _ => check_format(&dir, &KalamSql::new(storage.clone()))?,
        }
        let engine = Self::assemble(dir, storage, lock);
        engine.set_offline();
        Ok(engine)
    }

    /// An engine over a directory a migration holds (locked, read-write, in no particular
    /// format yet): enough to record the migration's job row.
    pub fn for_migration(dir: DataDir, storage: Storage, lock: DirLock) -> Engine {
        let engine = Self::assemble(dir, storage, Some(lock));
        engine.set_offline();
        engine
    }

    fn assemble(dir: DataDir, storage: Storage, lock: Option<DirLock>) -> Engine {
        register_job_kinds();
        let sql = KalamSql::new(storage.clone());
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

    /// Serialises writes and flushes of one table within this process.
    pub fn table_lock(&self, namespace: &str, table: &str) -> Arc<tokio::sync::Mutex<()>> {
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

/// The job types the engine itself runs and knows how to cancel or resume.
fn register_job_kinds() {
    static TABLE_DELETION: crate::drop_table::TableDeletion = crate::drop_table::TableDeletion;
    jobs::register(&TABLE_DELETION);
}

fn check_format(dir: &DataDir, sql: &KalamSql) -> Result<()> {
    let path = dir.root().display().to_string();
    match sql.format_state()? {
        FormatState::Current(_) => Ok(()),
        FormatState::Newer(m) => Err(CoreError::newer_format(path, m)),
        FormatState::Older(m) => Err(CoreError::Unmigrated {
            path,
            what: format!("format {} directory", m.format_version),
        }),
        FormatState::Unmarked => Err(CoreError::Unmigrated {
            path,
            what: "legacy (unmarked) directory".into(),
        }),
        FormatState::Unreadable(reason) => Err(CoreError::UnreadableFormat { path, reason }),
    }
}
