//! Typed stores for the three kinds of data table.
//!
//! Each store maps `(namespace, table, ...)` onto the table's column family and key encoding
//! (see [`crate::keys`]). User and shared stores maintain the system columns: every write
//! sets `_updated` (epoch milliseconds; a row that carries one keeps it, so a writer can
//! know the value written) and `_deleted` (false unless soft-deleted).

use std::ops::ControlFlow;

use serde_json::Value;

use crate::keys::{self, TableCf, TableKind};
use crate::rows::{RowEncoder, decode_row, encode_row};
use crate::{Batch, Result, Row, Storage, StoreError, now_ms};

/// Column names the engine maintains on user and shared rows.
pub const UPDATED: &str = "_updated";
pub const DELETED: &str = "_deleted";

/// What every data store shares: one column family per table.
#[derive(Debug, Clone)]
struct DataStore {
    storage: Storage,
    kind: TableKind,
}

impl DataStore {
    fn cf(&self, namespace: &str, table: &str) -> String {
        TableCf::new(self.kind, namespace, table).name()
    }

    fn create(&self, namespace: &str, table: &str) -> Result<()> {
        self.storage.create_cf(&self.cf(namespace, table))
    }

    fn drop(&self, namespace: &str, table: &str) -> Result<()> {
        self.storage.drop_cf(&self.cf(namespace, table))
    }

    fn exists(&self, namespace: &str, table: &str) -> bool {
        self.storage.has_cf(&self.cf(namespace, table))
    }

    fn get(&self, cf: &str, key: &str) -> Result<Option<Row>> {
        match self.storage.get(cf, key.as_bytes())? {
            Some(bytes) => Ok(Some(decode_row(cf, key.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
    }

    fn get_many(&self, cf: &str, keys: &[String]) -> Result<Vec<Option<Row>>> {
        let values = self.storage.multi_get(cf, keys)?;
        keys.iter()
            .zip(values)
            .map(|(key, value)| match value {
                Some(bytes) => Ok(Some(decode_row(cf, key.as_bytes(), &bytes)?)),
                None => Ok(None),
            })
            .collect()
    }

    /// Writes `(key, row)` pairs atomically, stamping the system columns when `stamp` is set.
    fn put_all(&self, cf: &str, rows: Vec<(String, Row)>, stamp: bool) -> Result<()> {
        let now = now_ms();
        let mut batch = Batch::new();
        for (key, mut row) in rows {
            if stamp {
                row.entry(UPDATED).or_insert(Value::from(now));
                row.entry(DELETED).or_insert(Value::Bool(false));
            }
            batch.put(cf, key.into_bytes(), encode_row(cf, &row)?);
        }
        self.storage.write(batch)
    }

    /// Writes rows given as values in the order of `columns` atomically, with the system
    /// columns set: the bytes `put_all` writes for the same rows as maps.
    fn put_values(
        &self,
        cf: &str,
        columns: &[&str],
        rows: impl IntoIterator<Item = (String, Vec<Value>)>,
    ) -> Result<()> {
        let mut all = columns.to_vec();
        all.extend([UPDATED, DELETED]);
        let encoder = RowEncoder::new(&all).ok_or_else(|| StoreError::Encode {
            cf: cf.to_string(),
            reason: format!("a column is named twice in {columns:?}"),
        })?;
        let now = Value::from(now_ms());
        let mut batch = Batch::new();
        for (key, mut values) in rows {
            values.extend([now.clone(), Value::Bool(false)]);
            batch.put(cf, key.into_bytes(), encoder.encode(cf, &values)?);
        }
        self.storage.write(batch)
    }

    fn delete_keys(&self, cf: &str, keys: impl IntoIterator<Item = String>) -> Result<()> {
        let mut batch = Batch::new();
        delete_keys_in(&mut batch, cf, keys);
        self.storage.write(batch)
    }

    fn scan<F>(&self, cf: &str, prefix: &str, mut f: F) -> Result<()>
    where
        F: FnMut(&str, Row) -> Result<ControlFlow<()>>,
    {
        self.storage.scan_prefix(cf, prefix.as_bytes(), |k, v| {
            let key = std::str::from_utf8(k).map_err(|_| StoreError::Corrupt {
                cf: cf.to_string(),
                key: String::from_utf8_lossy(k).into_owned(),
                reason: "key is not UTF-8".into(),
            })?;
            f(key, decode_row(cf, k, v)?)
        })
    }
}

/// The column-family lifecycle every data store shares.
macro_rules! table_lifecycle {
    ($store:ty) => {
        impl $store {
            /// Creates the table's column family; a no-op if it exists.
            pub fn create_table(&self, namespace: &str, table: &str) -> Result<()> {
                self.inner.create(namespace, table)
            }
            /// Drops the table's column family in constant time; a no-op if it is gone.
            pub fn drop_table(&self, namespace: &str, table: &str) -> Result<()> {
                self.inner.drop(namespace, table)
            }
            pub fn table_exists(&self, namespace: &str, table: &str) -> bool {
                self.inner.exists(namespace, table)
            }
        }
    };
}
table_lifecycle!(UserTableStore);
table_lifecycle!(SharedTableStore);
table_lifecycle!(StreamTableStore);

fn delete_keys_in(batch: &mut Batch, cf: &str, keys: impl IntoIterator<Item = String>) {
    for key in keys {
        batch.delete(cf, key.into_bytes());
    }
}

fn corrupt_key(cf: &str, key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        cf: cf.to_string(),
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Rows of user tables, keyed `{user_id}:{row_id}`: each user sees only their own prefix.
#[derive(Debug, Clone)]
pub struct UserTableStore {
    inner: DataStore,
}

impl UserTableStore {
    pub fn new(storage: Storage) -> Self {
        UserTableStore {
            inner: DataStore {
                storage,
                kind: TableKind::User,
            },
        }
    }
    pub fn get(
        &self,
        namespace: &str,
        table: &str,
        user_id: &str,
        row_id: &str,
    ) -> Result<Option<Row>> {
        self.inner.get(
            &self.inner.cf(namespace, table),
            &keys::user_key(user_id, row_id),
        )
    }
    /// The rows of many of one user's keys, in the order given, in one batched read.
    pub fn get_many(
        &self,
        namespace: &str,
        table: &str,
        user_id: &str,
        row_ids: &[&str],
    ) -> Result<Vec<Option<Row>>> {
        let keys: Vec<String> = row_ids.iter().map(|r| keys::user_key(user_id, r)).collect();
        self.inner.get_many(&self.inner.cf(namespace, table), &keys)
    }
    /// Writes rows `(user_id, row_id, row)` atomically, setting `_updated` and `_deleted`.
    pub fn put_batch(
        &self,
        namespace: &str,
        table: &str,
        rows: Vec<(String, String, Row)>,
    ) -> Result<()> {
        let rows = rows
            .into_iter()
            .map(|(u, r, row)| (keys::user_key(&u, &r), row))
            .collect();
        self.inner
            .put_all(&self.inner.cf(namespace, table), rows, true)
    }
    /// Writes one user's rows `(row_id, values)`, the values in the order of `columns` (a
    /// null is left out), atomically, setting `_updated` and `_deleted`: what `put_batch`
    /// writes for the same rows, without building a map of each.
    pub fn put_values(
        &self,
        namespace: &str,
        table: &str,
        user_id: &str,
        columns: &[&str],
        rows: Vec<(String, Vec<Value>)>,
    ) -> Result<()> {
        self.inner.put_values(
            &self.inner.cf(namespace, table),
            columns,
            rows.into_iter()
                .map(|(r, values)| (keys::user_key(user_id, &r), values)),
        )
    }
    /// Adds the removal of rows `(user_id, row_id)` to `batch`, to commit with other writes
    /// (a flush removes rows together with the manifest entry of the file now holding them).
    pub fn remove_in(
        &self,
        batch: &mut Batch,
        namespace: &str,
        table: &str,
        keys: impl IntoIterator<Item = (String, String)>,
    ) {
        let cf = self.inner.cf(namespace, table);
        delete_keys_in(
            batch,
            &cf,
            keys.into_iter().map(|(u, r)| keys::user_key(&u, &r)),
        );
    }
    /// Every row of one user, in row-id order.
    pub fn scan_user<F>(&self, namespace: &str, table: &str, user_id: &str, mut f: F) -> Result<()>
    where
        F: FnMut(&str, Row) -> Result<ControlFlow<()>>,
    {
        let cf = self.inner.cf(namespace, table);
        let prefix = keys::user_prefix(user_id);
        self.inner
            .scan(&cf, &prefix, |key, row| f(&key[prefix.len()..], row))
    }
    /// Every row of every user, as `(user_id, row_id, row)`.
    pub fn scan_all<F>(&self, namespace: &str, table: &str, mut f: F) -> Result<()>
    where
        F: FnMut(&str, &str, Row) -> Result<ControlFlow<()>>,
    {
        let cf = self.inner.cf(namespace, table);
        self.inner.scan(&cf, "", |key, row| {
            let (user, row_id) = keys::parse_user_key(key)
                .ok_or_else(|| corrupt_key(&cf, key, "expected {user_id}:{row_id}"))?;
            f(user, row_id, row)
        })
    }
}

/// Rows of shared tables, keyed `{row_id}`.
#[derive(Debug, Clone)]
pub struct SharedTableStore {
    inner: DataStore,
}

impl SharedTableStore {
    pub fn new(storage: Storage) -> Self {
        SharedTableStore {
            inner: DataStore {
                storage,
                kind: TableKind::Shared,
            },
        }
    }
    pub fn get(&self, namespace: &str, table: &str, row_id: &str) -> Result<Option<Row>> {
        self.inner.get(&self.inner.cf(namespace, table), row_id)
    }
    /// The rows of many keys, in the order given, in one batched read.
    pub fn get_many(
        &self,
        namespace: &str,
        table: &str,
        row_ids: &[&str],
    ) -> Result<Vec<Option<Row>>> {
        let keys: Vec<String> = row_ids.iter().map(|r| r.to_string()).collect();
        self.inner.get_many(&self.inner.cf(namespace, table), &keys)
    }
    /// Writes rows `(row_id, row)` atomically, setting `_updated` and `_deleted`.
    pub fn put_batch(&self, namespace: &str, table: &str, rows: Vec<(String, Row)>) -> Result<()> {
        self.inner
            .put_all(&self.inner.cf(namespace, table), rows, true)
    }
    /// Writes rows `(row_id, values)`, the values in the order of `columns` (a null is left
    /// out), atomically, setting `_updated` and `_deleted`: what `put_batch` writes for the
    /// same rows, without building a map of each.
    pub fn put_values(
        &self,
        namespace: &str,
        table: &str,
        columns: &[&str],
        rows: Vec<(String, Vec<Value>)>,
    ) -> Result<()> {
        self.inner
            .put_values(&self.inner.cf(namespace, table), columns, rows)
    }
    /// Adds the removal of rows to `batch`, to commit with other writes.
    pub fn remove_in(
        &self,
        batch: &mut Batch,
        namespace: &str,
        table: &str,
        row_ids: impl IntoIterator<Item = String>,
    ) {
        delete_keys_in(batch, &self.inner.cf(namespace, table), row_ids);
    }
    pub fn scan_all<F>(&self, namespace: &str, table: &str, f: F) -> Result<()>
    where
        F: FnMut(&str, Row) -> Result<ControlFlow<()>>,
    {
        self.inner.scan(&self.inner.cf(namespace, table), "", f)
    }
}

/// Rows of stream tables, keyed `{timestamp_ms}:{row_id}`, with no system columns.
#[derive(Debug, Clone)]
pub struct StreamTableStore {
    inner: DataStore,
}

impl StreamTableStore {
    pub fn new(storage: Storage) -> Self {
        StreamTableStore {
            inner: DataStore {
                storage,
                kind: TableKind::Stream,
            },
        }
    }
    /// Writes rows `(timestamp_ms, row_id, row)` atomically, as given.
    pub fn put_batch(
        &self,
        namespace: &str,
        table: &str,
        rows: Vec<(i64, String, Row)>,
    ) -> Result<()> {
        let rows = rows
            .into_iter()
            .map(|(ts, r, row)| (keys::stream_key(ts, &r), row))
            .collect();
        self.inner
            .put_all(&self.inner.cf(namespace, table), rows, false)
    }
    /// Removes rows by `(timestamp_ms, row_id)`.
    pub fn remove(&self, namespace: &str, table: &str, keys: Vec<(i64, String)>) -> Result<()> {
        let cf = self.inner.cf(namespace, table);
        self.inner.delete_keys(
            &cf,
            keys.into_iter().map(|(ts, r)| keys::stream_key(ts, &r)),
        )
    }
    /// Deletes every row older than `cutoff_ms`; returns how many. Reads only the expired
    /// keys (from the oldest end), then removes them with one range tombstone: the cost does
    /// not grow with the rows that survive.
    pub fn evict_older_than(&self, namespace: &str, table: &str, cutoff_ms: i64) -> Result<u64> {
        self.evict_older_than_keeping(namespace, table, cutoff_ms, None)
    }

    /// [`Self::evict_older_than`], handing the evicted rows to `evicted` as `(key, row)`
    /// when given (for live queries that asked to see evictions).
    pub fn evict_older_than_keeping(
        &self,
        namespace: &str,
        table: &str,
        cutoff_ms: i64,
        mut evicted: Option<&mut Vec<(String, Row)>>,
    ) -> Result<u64> {
        let cf = self.inner.cf(namespace, table);
        let mut expired = 0u64;
        // The range deleted ends at the first key the scan did not count (or just past the
        // last one it did): exactly the keys counted, whatever their timestamps' digit count.
        let mut end: Option<Vec<u8>> = None;
        self.inner.storage.scan_prefix(&cf, b"", |k, v| {
            let ts = std::str::from_utf8(k)
                .ok()
                .and_then(keys::parse_stream_key)
                .map(|(ts, _)| ts);
            Ok(match ts {
                Some(ts) if ts < cutoff_ms => {
                    expired = expired.saturating_add(1);
                    if let Some(rows) = evicted.as_deref_mut() {
                        rows.push((
                            String::from_utf8_lossy(k).into_owned(),
                            decode_row(&cf, k, v)?,
                        ));
                    }
                    let mut next = k.to_vec();
                    next.push(0);
                    end = Some(next);
                    ControlFlow::Continue(())
                }
                _ => {
                    end = (expired > 0).then(|| k.to_vec());
                    ControlFlow::Break(())
                }
            })
        })?;
        if let Some(end) = end.filter(|_| expired > 0) {
            self.inner.storage.delete_range(&cf, b"", &end)?;
        }
        Ok(expired)
    }

    /// Keeps the newest `max_rows` rows and deletes the rest; returns how many were deleted.
    /// Reads from the newest end: `max_rows` keys plus the ones it deletes.
    pub fn evict_beyond(&self, namespace: &str, table: &str, max_rows: u64) -> Result<u64> {
        self.evict_beyond_keeping(namespace, table, max_rows, None)
    }

    /// [`Self::evict_beyond`], handing the evicted rows to `evicted` when given.
    pub fn evict_beyond_keeping(
        &self,
        namespace: &str,
        table: &str,
        max_rows: u64,
        mut evicted: Option<&mut Vec<(String, Row)>>,
    ) -> Result<u64> {
        let cf = self.inner.cf(namespace, table);
        let mut kept = 0u64;
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        self.inner.storage.scan_reverse(&cf, |k, v| {
            if kept < max_rows {
                kept += 1;
            } else {
                if let Some(rows) = evicted.as_deref_mut() {
                    rows.push((
                        String::from_utf8_lossy(k).into_owned(),
                        decode_row(&cf, k, v)?,
                    ));
                }
                doomed.push(k.to_vec());
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let n = doomed.len() as u64;
        if n > 0 {
            let mut batch = Batch::new();
            for k in doomed {
                batch.delete(&cf, k);
            }
            self.inner.storage.write(batch)?;
        }
        Ok(n)
    }

    /// Every row, oldest first, as `(timestamp_ms, row_id, row)`.
    pub fn scan_all<F>(&self, namespace: &str, table: &str, mut f: F) -> Result<()>
    where
        F: FnMut(i64, &str, Row) -> Result<ControlFlow<()>>,
    {
        let cf = self.inner.cf(namespace, table);
        self.inner.scan(&cf, "", |key, row| {
            let (ts, row_id) = keys::parse_stream_key(key)
                .ok_or_else(|| corrupt_key(&cf, key, "expected {timestamp_ms}:{row_id}"))?;
            f(ts, row_id, row)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenMode;

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn rows_written_as_values_read_back_as_the_same_rows_written_as_maps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), OpenMode::Create).expect("open");
        let (users, shared) = (
            UserTableStore::new(storage.clone()),
            SharedTableStore::new(storage),
        );
        users.create_table("app", "u").expect("create");
        shared.create_table("app", "s").expect("create");
        let columns = ["title", "id", "note"];
        let values = vec![Value::from("x \"y\""), Value::from(7), Value::Null];
        let as_map = row(&[("title", values[0].clone()), ("id", values[1].clone())]);
        users
            .put_values(
                "app",
                "u",
                "alice",
                &columns,
                vec![("1".into(), values.clone())],
            )
            .expect("put");
        users
            .put_batch(
                "app",
                "u",
                vec![("alice".into(), "2".into(), as_map.clone())],
            )
            .expect("put");
        shared
            .put_values("app", "s", &columns, vec![("1".into(), values)])
            .expect("put");
        shared
            .put_batch("app", "s", vec![("2".into(), as_map)])
            .expect("put");
        let without_time = |mut r: Row| {
            assert!(r.remove(UPDATED).is_some_and(|t| t.is_i64()), "stamped");
            r
        };
        let get_user = |id: &str| {
            users
                .get("app", "u", "alice", id)
                .expect("get")
                .expect("row")
        };
        let get_shared = |id: &str| shared.get("app", "s", id).expect("get").expect("row");
        assert_eq!(without_time(get_user("1")), without_time(get_user("2")));
        assert_eq!(without_time(get_shared("1")), without_time(get_shared("2")));
        assert_eq!(get_user("1").get(DELETED), Some(&Value::Bool(false)));
        assert!(
            users
                .put_values(
                    "app",
                    "u",
                    "alice",
                    &[UPDATED],
                    vec![("3".into(), vec![Value::from(1)])]
                )
                .is_err(),
            "a system column given as a value is refused"
        );
    }

    #[test]
    fn user_rows_are_isolated_by_prefix_and_stamped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), OpenMode::Create).expect("open");
        let store = UserTableStore::new(storage);
        store.create_table("app", "notes").expect("create");
        store
            .put_batch(
                "app",
                "notes",
                vec![
                    ("alice".into(), "1".into(), row(&[("text", "a".into())])),
                    ("alice".into(), "2".into(), row(&[("text", "b".into())])),
                    ("alicia".into(), "1".into(), row(&[("text", "c".into())])),
                ],
            )
            .expect("put");
        let mut alice = Vec::new();
        store
            .scan_user("app", "notes", "alice", |id, r| {
                alice.push((id.to_string(), r));
                Ok(ControlFlow::Continue(()))
            })
            .expect("scan");
        assert_eq!(
            alice.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            vec!["1", "2"]
        );
        let first = &alice[0].1;
        assert!(
            first
                .get(UPDATED)
                .and_then(Value::as_i64)
                .is_some_and(|t| t > 1_600_000_000_000)
        );
        assert_eq!(first.get(DELETED), Some(&Value::Bool(false)));
        let got = store
            .get("app", "notes", "alicia", "1")
            .expect("get")
            .expect("row");
        assert_eq!(got.get("text"), Some(&Value::from("c")));
    }

    #[test]
    fn stream_rows_have_no_system_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), OpenMode::Create).expect("open");
        let store = StreamTableStore::new(storage);
        store.create_table("app", "events").expect("create");
        store
            .put_batch(
                "app",
                "events",
                vec![(1_700_000_000_000, "x_1".into(), row(&[("v", 1.into())]))],
            )
            .expect("put");
        let mut seen = Vec::new();
        store
            .scan_all("app", "events", |ts, id, r| {
                seen.push((ts, id.to_string(), r));
                Ok(ControlFlow::Continue(()))
            })
            .expect("scan");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 1_700_000_000_000);
        assert!(!seen[0].2.contains_key(UPDATED) && !seen[0].2.contains_key(DELETED));
    }

    #[test]
    fn eviction_by_age_and_by_count_keeps_the_newest_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), OpenMode::Create).expect("open");
        let store = StreamTableStore::new(storage);
        store.create_table("app", "ev").expect("create");
        let base = 1_700_000_000_000_i64;
        let rows = (0..10)
            .map(|i| (base + i * 1000, format!("r{i}"), row(&[("i", i.into())])))
            .collect();
        store.put_batch("app", "ev", rows).expect("put");
        let left = |s: &StreamTableStore| {
            let mut ids = Vec::new();
            s.scan_all("app", "ev", |_, id, _| {
                ids.push(id.to_string());
                Ok(ControlFlow::Continue(()))
            })
            .expect("scan");
            ids
        };
        assert_eq!(
            store
                .evict_older_than("app", "ev", base + 3000)
                .expect("ttl"),
            3
        );
        assert_eq!(left(&store).first().map(String::as_str), Some("r3"));
        assert_eq!(
            store
                .evict_older_than("app", "ev", base + 3000)
                .expect("again"),
            0,
            "nothing left to expire"
        );
        assert_eq!(store.evict_beyond("app", "ev", 4).expect("buffer"), 3);
        assert_eq!(left(&store), vec!["r6", "r7", "r8", "r9"]);
        assert_eq!(
            store.evict_beyond("app", "ev", 4).expect("again"),
            0,
            "a second run evicts nothing"
        );
    }

    #[test]
    fn eviction_deletes_exactly_the_expired_keys_whatever_their_digit_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), OpenMode::Create).expect("open");
        let store = StreamTableStore::new(storage);
        store.create_table("app", "ev").expect("create");
        // A row from 1973 (12 digits, sorts first) and rows from 2023 (13 digits). A cutoff in
        // 1995 (12 digits, "8...") sorts after every 13-digit key starting with 1..7 as bytes:
        // deleting the byte range ["0", "8...") would take every current row with it.
        let old = 100_000_000_000_i64;
        let base = 1_700_000_000_000_i64;
        let mut rows = vec![(old, "old".to_string(), row(&[("i", 0.into())]))];
        rows.extend((1..4).map(|i| (base + i, format!("r{i}"), row(&[("i", i.into())]))));
        store.put_batch("app", "ev", rows).expect("put");
        assert_eq!(
            store
                .evict_older_than("app", "ev", 800_000_000_000)
                .expect("ttl"),
            1
        );
        let mut ids = Vec::new();
        store
            .scan_all("app", "ev", |_, id, _| {
                ids.push(id.to_string());
                Ok(ControlFlow::Continue(()))
            })
            .expect("scan");
        assert_eq!(ids, vec!["r1", "r2", "r3"]);
        assert_eq!(
            store.evict_older_than("app", "ev", i64::MIN).expect("min"),
            0
        );
        assert_eq!(
            store.evict_older_than("app", "ev", i64::MAX).expect("max"),
            3
        );
    }
}
