//! One generic implementation of get, insert, update, delete and scan for every system table.

use std::marker::PhantomData;
use std::ops::ControlFlow;

use kalamdb_store::{Batch, Storage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, SqlError};

/// A record of one system table.
pub trait SystemRecord: Serialize + DeserializeOwned + Clone {
    /// The table's name under `system.` (`users`, `jobs`, ...).
    const TABLE: &'static str;
    /// The column family holding the table.
    const CF: &'static str;
    /// The key prefix every record of the table carries (`user:`, `job:`, ...).
    const KEY_PREFIX: &'static str;
    /// The record's id: its key without [`SystemRecord::KEY_PREFIX`].
    fn id(&self) -> String;
}

/// A record that even the tolerant reader could not read, as found by
/// [`SystemTable::scan_lenient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecord {
    pub cf: String,
    pub key: String,
    pub reason: String,
}

/// Typed access to one system table.
#[derive(Debug, Clone)]
pub struct SystemTable<R> {
    storage: Storage,
    _record: PhantomData<fn() -> R>,
}

fn key_of<R: SystemRecord>(id: &str) -> String {
    format!("{}{}", R::KEY_PREFIX, id)
}

fn encode<R: SystemRecord>(record: &R) -> Vec<u8> {
    // The records are plain structs of strings, numbers and lists: serialisation cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

fn decode<R: SystemRecord>(key: &str, bytes: &[u8]) -> Result<R> {
    serde_json::from_slice(bytes).map_err(|e| SqlError::Malformed {
        table: R::TABLE,
        key: key.to_string(),
        reason: e.to_string(),
    })
}

impl<R: SystemRecord> SystemTable<R> {
    pub fn new(storage: Storage) -> Self {
        SystemTable {
            storage,
            _record: PhantomData,
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<R>> {
        let key = key_of::<R>(id);
        match self.storage.get(R::CF, key.as_bytes())? {
            Some(bytes) => Ok(Some(decode(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .storage
            .get(R::CF, key_of::<R>(id).as_bytes())?
            .is_some())
    }

    /// Inserts a new record; refuses an id that is taken.
    pub fn insert(&self, record: &R) -> Result<()> {
        if self.exists(&record.id())? {
            return Err(SqlError::AlreadyExists {
                table: R::TABLE,
                id: record.id(),
            });
        }
        self.put(record)
    }

    /// Replaces an existing record; refuses an id that is not there.
    pub fn update(&self, record: &R) -> Result<()> {
        if !self.exists(&record.id())? {
            return Err(SqlError::NotFound {
                table: R::TABLE,
                id: record.id(),
            });
        }
        self.put(record)
    }

    /// Writes the record whether or not it exists.
    pub fn put(&self, record: &R) -> Result<()> {
        let key = key_of::<R>(&record.id());
        self.storage.put(R::CF, key.as_bytes(), &encode(record))?;
        Ok(())
    }

    /// Deletes a record; returns whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool> {
        let existed = self.exists(id)?;
        if existed {
            self.storage.delete(R::CF, key_of::<R>(id).as_bytes())?;
        }
        Ok(existed)
    }

    /// Adds a write of `record` to `batch`, to commit with other changes atomically.
    pub fn put_in(&self, batch: &mut Batch, record: &R) {
        batch.put(R::CF, key_of::<R>(&record.id()), encode(record));
    }

    /// Adds a delete of `id` to `batch`.
    pub fn delete_in(&self, batch: &mut Batch, id: &str) {
        batch.delete(R::CF, key_of::<R>(id));
    }

    /// Every record, in key order; fails on the first malformed one.
    pub fn scan(&self) -> Result<Vec<R>> {
        self.scan_prefix("")
    }

    /// Every record whose id starts with `id_prefix`.
    pub fn scan_prefix(&self, id_prefix: &str) -> Result<Vec<R>> {
        let (records, invalid) = self.scan_inner(id_prefix)?;
        match invalid.into_iter().next() {
            Some(bad) => Err(SqlError::Malformed {
                table: R::TABLE,
                key: bad.key,
                reason: bad.reason,
            }),
            None => Ok(records),
        }
    }

    /// Every readable record, plus every record that could not be read.
    pub fn scan_lenient(&self) -> Result<(Vec<R>, Vec<InvalidRecord>)> {
        self.scan_inner("")
    }

    fn scan_inner(&self, id_prefix: &str) -> Result<(Vec<R>, Vec<InvalidRecord>)> {
        let prefix = key_of::<R>(id_prefix);
        let mut records = Vec::new();
        let mut invalid = Vec::new();
        self.storage.scan_prefix(R::CF, prefix.as_bytes(), |k, v| {
            let key = String::from_utf8_lossy(k).into_owned();
            match decode::<R>(&key, v) {
                Ok(r) => records.push(r),
                Err(e) => invalid.push(InvalidRecord {
                    cf: R::CF.to_string(),
                    key,
                    reason: e.to_string(),
                }),
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok((records, invalid))
    }
}
