//! KalamDB's engine.
//!
//! [`Engine`] opens a data directory and runs SQL over it: namespaces, user, shared and
//! stream tables, DML with soft deletes, flush from the hot tier (RocksDB) to the cold tier
//! (Parquet), and table deletion, with queries planned and run by DataFusion over both
//! tiers. It also holds what every long operation builds on: the data directory and its
//! lock ([`data_dir`]), the job base layer ([`jobs`]), durable file steps ([`fs`]).
//!
//! The admin operations are crates of their own on top of this one: `kalamdb-verify`,
//! `kalamdb-migrate` and `kalamdb-backup` (which registers `BACKUP DATABASE`, see
//! [`sql::BackupHandler`]).
//!
//! This crate does not depend on `rocksdb`: data goes through `kalamdb-store` and metadata
//! through `kalamdb-sql`, which share the process's one RocksDB handle.

pub mod api;
mod blocking;
pub mod catalog;
pub mod checksum;
pub mod cold;
pub mod data_dir;
mod drop_table;
mod engine;
mod error;
pub mod fail;
mod flush;
pub mod fs;
pub mod jobs;
pub mod leftovers;
pub mod limits;
pub mod live;
pub mod maintenance;
mod open;
pub mod parallel;
pub mod process;
mod providers;
mod result;
mod session;
pub mod sql;
mod stats;
mod subscribe;
mod table_data;
pub mod table_lock;

pub use drop_table::{DropOptions, DropReport};
pub use engine::{Access, Engine};
pub use error::{CoreError, ErrorKind, Result};
pub use flush::FlushReport;
pub use result::QueryResult;
pub use session::{ADMIN_USER_ID, Role, Session};
pub use stats::StatsSnapshot;
pub use subscribe::Initial;
pub use table_data::ReadOptions;

/// Re-exported so the binaries name store types without depending on the storage crates.
pub use kalamdb_sql::{CURRENT_FORMAT_VERSION, JobProgress, JobRecord, JobStatus};
pub use kalamdb_store::{Row, TableKind};
