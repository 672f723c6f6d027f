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

/// A record as stored bytes; a failure is an error, never empty bytes.
pub(crate) fn encode<R: SystemRecord>(record: &R) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| SqlError::Encode {
        table: R::TABLE,
        id: record.id(),
        reason: e.to_string(),
    })
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
        self.storage.put(R::CF, key.as_bytes(), &encode(record)?)?;
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
    pub fn put_in(&self, batch: &mut Batch, record: &R) -> Result<()> {
        batch.put(R::CF, key_of::<R>(&record.id()), encode(record)?);
        Ok(())
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

    /// [`SystemTable::scan_lenient`] of the records whose id starts with `id_prefix`.
    pub fn scan_prefix_lenient(&self, id_prefix: &str) -> Result<(Vec<R>, Vec<InvalidRecord>)> {
        self.scan_inner(id_prefix)
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

/// Property tests of the tolerant readers: any JSON a legacy writer (or a corrupt disk) left
/// under a system-table key reads as a record or as a clear error, never a panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::decode;
    use crate::{
        JobRecord, LiveQueryRecord, NamespaceRecord, StorageLocationRecord, SystemRecord,
        TableRecord, TableSchemaRecord, UserRecord,
    };

    /// Every field name the seven record types use, plus a stranger.
    const FIELDS: &[&str] = &[
        "user_id",
        "username",
        "email",
        "role",
        "created_at",
        "updated_at",
        "namespace_id",
        "name",
        "table_count",
        "options",
        "location_name",
        "location_type",
        "path",
        "credentials_ref",
        "usage_count",
        "live_id",
        "connection_id",
        "table_name",
        "query_id",
        "query",
        "changes",
        "node",
        "job_id",
        "job_type",
        "status",
        "start_time",
        "end_time",
        "parameters",
        "result",
        "owner",
        "heartbeat_at",
        "progress",
        "step",
        "resume_state",
        "table_id",
        "namespace",
        "table_type",
        "storage_location",
        "flush_policy",
        "schema_version",
        "deleted_retention_hours",
        "ttl_seconds",
        "max_buffer",
        "schema_id",
        "version",
        "arrow_schema",
        "stranger",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            Just(json!(i64::MIN)),
            Just(json!(u64::MAX)),
            "\\PC{0,12}".prop_map(Value::from),
            prop::sample::select(
                &[
                    "2023-11-14T22:13:20Z",
                    "1700000000",
                    "-9223372036854775808",
                    "running",
                    "USER",
                    "Shared",
                    "{\"type\":\"row_limit\",\"row_limit\":18446744073709551615}",
                    "[\"a\"]"
                ][..]
            )
            .prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An object with a random subset of the real field names, each with a random value.
    fn record_like() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec((prop::sample::select(FIELDS), value()), 0..24).prop_map(|fields| {
            let map: Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
        })
    }

    fn read_all(bytes: &[u8]) -> Result<(), TestCaseError> {
        fn one<R: SystemRecord>(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Err(e) = decode::<R>("k", bytes) {
                let text = e.to_string();
                prop_assert!(text.contains(R::TABLE), "{text}");
                prop_assert!(!text.contains('\n'), "{text}");
            }
            Ok(())
        }
        one::<UserRecord>(bytes)?;
        one::<NamespaceRecord>(bytes)?;
        one::<StorageLocationRecord>(bytes)?;
        one::<LiveQueryRecord>(bytes)?;
        one::<JobRecord>(bytes)?;
        one::<TableRecord>(bytes)?;
        one::<TableSchemaRecord>(bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn record_shaped_json_never_panics(bytes in record_like()) {
            read_all(&bytes)?;
        }

        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            read_all(&bytes)?;
        }

        #[test]
        fn integer_timestamps_scale_without_overflow(n in any::<i64>()) {
            // Seconds below 1e11 become milliseconds; anything else already is. i64::MIN
            // included: its absolute value overflows an i64.
            let expected = if n.unsigned_abs() < 100_000_000_000 { n * 1000 } else { n };
            prop_assert_eq!(crate::tolerant::millis_from_json(&json!(n)), Some(expected));
            prop_assert_eq!(crate::tolerant::millis_from_json(&json!(n.to_string())), Some(expected));
        }
    }
}
