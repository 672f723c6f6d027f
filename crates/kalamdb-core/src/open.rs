//! Opening a data directory: creating one, opening it read-write (with the lock, settling
//! the jobs a dead process left) or read-only, for verify, for a migration, or a restored copy.

use kalamdb_sql::{FormatState, KalamSql};
use kalamdb_store::{OpenMode, Storage};

use crate::data_dir::{DataDir, DirLock, Layout};
use crate::engine::{Access, Engine};
use crate::{CoreError, Result, jobs};

impl Engine {
    /// Creates a new, empty database in the current format. Refuses a directory that already
    /// holds one.
    pub fn init(root: impl Into<std::path::PathBuf>, who: &str) -> Result<Engine> {
        let dir = DataDir::new(root);
        if dir.layout() != Layout::NoDatabase {
            // A database is there. In the original engine's layout, migrating it is the fix,
            // and the check names it; otherwise it is simply initialized already.
            dir.check_is_database()?;
            return Err(CoreError::AlreadyInitialized {
                path: dir.root().display().to_string(),
            });
        }
        crate::fs::create_dir_durable(dir.root())?;
        let lock = DirLock::acquire(&dir, who)?;
        let storage = Storage::open(&dir.rocksdb(), OpenMode::Create)?;
        let sql = KalamSql::new(storage.clone());
        sql.ensure_system_tables()?;
        let engine = assemble(dir, storage, Some(lock));
        engine.catalog().bootstrap()?;
        engine.catalog().sql().write_format_marker()?;
        crate::fs::create_dir_durable(&engine.data_dir().storage())?;
        // `init` reports a database: its catalog and marker survive a power cut.
        engine.storage().sync_wal()?;
        crate::fs::sync_dir(engine.data_dir().root())?;
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
        let engine = assemble(dir, storage, lock);
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
        let engine = assemble(dir, storage, lock);
        engine.set_offline();
        Ok(engine)
    }

    /// An engine over a directory a migration holds (locked, read-write, in no particular
    /// format yet): enough to record the migration's job row.
    pub fn for_migration(dir: DataDir, storage: Storage, lock: DirLock) -> Engine {
        let engine = assemble(dir, storage, Some(lock));
        engine.set_offline();
        engine
    }
}

/// Every open assembles its engine here: the engine's own job types are registered first,
/// so the jobs a dead process left are settled by their kind's rules.
fn assemble(dir: DataDir, storage: Storage, lock: Option<DirLock>) -> Engine {
    register_job_kinds();
    Engine::assemble(dir, storage, lock)
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
