use thiserror::Error;

/// Errors from the data layer.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process holds RocksDB's own lock on the directory.
    #[error("the database at {path} is locked by another process")]
    Locked { path: String },

    /// The path holds no RocksDB database and creation was not requested.
    #[error("{path} is not a KalamDB database (no RocksDB files found)")]
    NotADatabase { path: String },

    /// A column family the caller named does not exist.
    #[error("column family '{0}' does not exist")]
    MissingColumnFamily(String),

    /// A stored key or value does not have the shape its column family requires.
    #[error("corrupt record in column family '{cf}' at key '{key}': {reason}")]
    Corrupt {
        cf: String,
        key: String,
        reason: String,
    },

    /// A block checksum or other integrity check failed inside RocksDB.
    #[error("RocksDB reported corruption: {0}")]
    Corruption(String),

    /// A value could not be serialised; nothing was written.
    #[error("cannot encode a value for column family '{cf}': {reason}")]
    Encode { cf: String, reason: String },

    /// Any other RocksDB failure.
    #[error("RocksDB error: {0}")]
    Rocks(String),

    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<rocksdb::Error> for StoreError {
    fn from(err: rocksdb::Error) -> Self {
        let text = err.to_string();
        match err.kind() {
            rocksdb::ErrorKind::Corruption => StoreError::Corruption(text),
            _ => StoreError::Rocks(text),
        }
    }
}
