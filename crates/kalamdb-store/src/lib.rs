//! KalamDB's data layer.
//!
//! This crate owns the process's single RocksDB handle ([`Storage`]) and everything that
//! touches RocksDB directly:
//!
//! - the user, shared and stream table stores ([`UserTableStore`], [`SharedTableStore`],
//!   [`StreamTableStore`]) and their key encoding ([`keys`]);
//! - the column-family lifecycle: creating and dropping a table's column family at runtime
//!   while other tables stay in use;
//! - the primitives the admin tools need: checkpoints, live-file listings, raw iteration and
//!   block-checksum verification.
//!
//! Nothing above this crate names `rocksdb`. The metadata layer (`kalamdb-sql`) reaches the
//! same handle through the generic key-value API on [`Storage`].

mod error;
pub mod keys;
mod rows;
mod storage;
mod tables;

pub use error::{Result, StoreError};
pub use keys::{TableCf, TableKind};
pub use rows::{Row, now_ms};
pub use storage::{Batch, DEFAULT_CF, LiveFile, OpenMode, Storage, is_database};
pub use tables::{DELETED, SharedTableStore, StreamTableStore, UPDATED, UserTableStore};
