//! The one RocksDB handle of a process, and the generic key-value API over it.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    ColumnFamilyDescriptor, DBWithThreadMode, Direction, MultiThreaded, Options, ReadOptions,
    WriteBatch, WriteOptions,
};

use crate::{Result, StoreError};

type Db = DBWithThreadMode<MultiThreaded>;

/// RocksDB's default column family, which always exists.
pub const DEFAULT_CF: &str = "default";

/// How to open a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read-write; refuse a path with no database.
    ReadWrite,
    /// Read-write, creating the database if the path holds none.
    Create,
    /// Read-only. Safe next to a running writer: nothing is written and no lock is taken.
    ReadOnly,
}

/// A file RocksDB currently uses, as listed by [`Storage::live_files`].
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub column_family: String,
    /// File name relative to the database directory, without a leading `/`.
    pub name: String,
    pub size: u64,
    pub level: i32,
    pub entries: u64,
}

/// The process's single RocksDB handle. Cheap to clone; every clone shares the handle.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Db>,
    path: PathBuf,
    read_only: bool,
    sync_writes: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// A set of writes applied atomically by [`Storage::write`].
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, cf: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops
            .push((cf.to_string(), key.into(), Some(value.into())));
    }
    pub fn delete(&mut self, cf: &str, key: impl Into<Vec<u8>>) {
        self.ops.push((cf.to_string(), key.into(), None));
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    opts.set_keep_log_file_num(10);
    // Files made obsolete (a dropped column family's SSTs, compaction inputs) are deleted by
    // a background thread, not by the caller: dropping a table takes the same time whatever
    // its size. The MANIFEST records the drop first, and RocksDB deletes unreferenced files at
    // the next open, so a crash before the deletion leaves nothing behind.
    opts.set_avoid_unnecessary_blocking_io(true);
    opts
}

/// Whether `path` holds a RocksDB database (it has a `CURRENT` file).
pub fn is_database(path: &Path) -> bool {
    path.join("CURRENT").is_file()
}

fn map_open_error(err: rocksdb::Error, path: &Path) -> StoreError {
    let text = err.to_string();
    if text.contains("lock")
        && (text.contains("temporarily unavailable") || text.contains("Resource busy"))
    {
        StoreError::Locked {
            path: path.display().to_string(),
        }
    } else {
        StoreError::from(err)
    }
}

impl Storage {
    /// Opens the database at `path` with every column family it has.
    ///
    /// RocksDB refuses to open a database unless every existing column family is named, so
    /// the families are listed first and all of them are opened.
    ///
    /// A read-only open next to a live writer (`kalamctl jobs list` or `verify` while kalamd
    /// runs) can find that a WAL or MANIFEST file it just listed was deleted by the writer
    /// before it could read it; such an open is retried, a few times, from the start.
    pub fn open(path: &Path, mode: OpenMode) -> Result<Storage> {
        const ATTEMPTS: u64 = 8;
        let mut attempt = 1;
        loop {
            match Self::open_once(path, mode) {
                Err(StoreError::Rocks(e))
                    if mode == OpenMode::ReadOnly
                        && attempt < ATTEMPTS
                        && e.contains("No such file or directory") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path, mode: OpenMode) -> Result<Storage> {
        let mut opts = db_options();
        let exists = is_database(path);
        if !exists && mode != OpenMode::Create {
            return Err(StoreError::NotADatabase {
                path: path.display().to_string(),
            });
        }
        if mode == OpenMode::Create {
            opts.create_if_missing(true);
            std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        let names = if exists {
            Db::list_cf(&opts, path).map_err(|e| map_open_error(e, path))?
        } else {
            vec![DEFAULT_CF.to_string()]
        };
        let descriptors = names
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = match mode {
            OpenMode::ReadOnly => {
                Db::open_cf_descriptors_read_only(&opts, path, descriptors, false)
            }
            _ => Db::open_cf_descriptors(&opts, path, descriptors),
        }
        .map_err(|e| map_open_error(e, path))?;
        Ok(Storage {
            db: Arc::new(db),
            path: path.to_path_buf(),
            read_only: mode == OpenMode::ReadOnly,
            sync_writes: false,
        })
    }

    /// Creates a database at `path` with `column_families` (and `default`), all created in
    /// one open: much faster than creating thousands one at a time.
    pub fn create_with(path: &Path, column_families: &[String]) -> Result<Storage> {
        let mut opts = db_options();
        opts.create_if_missing(true);
        std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut names: Vec<&str> = vec![DEFAULT_CF];
        names.extend(column_families.iter().map(String::as_str));
        let descriptors = names
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = Db::open_cf_descriptors(&opts, path, descriptors)
            .map_err(|e| map_open_error(e, path))?;
        Ok(Storage {
            db: Arc::new(db),
            path: path.to_path_buf(),
            read_only: false,
            sync_writes: false,
        })
    }

    /// Makes every write fsync the WAL before it returns. Without it, an acknowledged write
    /// survives a process crash; with it, it also survives a power cut.
    pub fn set_sync_writes(&mut self, sync: bool) {
        self.sync_writes = sync;
    }

    /// fsyncs the WAL: every write made so far survives a power cut.
    pub fn sync_wal(&self) -> Result<()> {
        if !self.read_only {
            self.db.flush_wal(true)?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The names of every column family, sorted.
    pub fn column_families(&self) -> Result<Vec<String>> {
        let mut names = Db::list_cf(&Options::default(), &self.path)?;
        names.sort();
        Ok(names)
    }

    pub fn has_cf(&self, name: &str) -> bool {
        self.db.cf_handle(name).is_some()
    }

    /// Creates a column family at runtime; a no-op if it already exists.
    pub fn create_cf(&self, name: &str) -> Result<()> {
        if self.has_cf(name) {
            return Ok(());
        }
        self.db.create_cf(name, &Options::default())?;
        Ok(())
    }

    /// Drops a column family at runtime; a no-op if it does not exist. Other column families
    /// stay in use. Time does not depend on how many keys the family holds.
    pub fn drop_cf(&self, name: &str) -> Result<()> {
        if !self.has_cf(name) {
            return Ok(());
        }
        self.db.drop_cf(name)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::MissingColumnFamily(name.to_string()))
    }

    fn write_options(&self) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        wo
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.cf(cf)?;
        Ok(self.db.get_cf(&handle, key)?)
    }

    /// The values of many keys of one column family, in the order given, in one batched read.
    pub fn multi_get<K: AsRef<[u8]>>(&self, cf: &str, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let handle = self.cf(cf)?;
        self.db
            .batched_multi_get_cf(&handle, keys.iter().map(AsRef::as_ref), false)
            .into_iter()
            .map(|v| Ok(v?.map(|slice| slice.to_vec())))
            .collect()
    }

    pub fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let handle = self.cf(cf)?;
        self.db
            .put_cf_opt(&handle, key, value, &self.write_options())?;
        Ok(())
    }

    pub fn delete(&self, cf: &str, key: &[u8]) -> Result<()> {
        let handle = self.cf(cf)?;
        self.db.delete_cf_opt(&handle, key, &self.write_options())?;
        Ok(())
    }

    /// Applies every operation of `batch` atomically.
    pub fn write(&self, batch: Batch) -> Result<()> {
        let mut wb = WriteBatch::default();
        for (cf, key, value) in &batch.ops {
            let handle = self.cf(cf)?;
            match value {
                Some(v) => wb.put_cf(&handle, key, v),
                None => wb.delete_cf(&handle, key),
            }
        }
        self.db.write_opt(wb, &self.write_options())?;
        Ok(())
    }

    /// Deletes every key in `[from, to)` with one range tombstone: the time does not grow
    /// with the number of keys.
    pub fn delete_range(&self, cf: &str, from: &[u8], to: &[u8]) -> Result<()> {
        let handle = self.cf(cf)?;
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(&handle, from, to);
        self.db.write_opt(wb, &self.write_options())?;
        Ok(())
    }

    /// Calls `f` for every key starting with `prefix`, in key order, until it breaks.
    pub fn scan_prefix<F>(&self, cf: &str, prefix: &[u8], f: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        // Every key in [prefix, its upper bound) starts with the prefix.
        self.iterate(cf, prefix, prefix_upper_bound(prefix), false, f)
    }

    /// Like [`Storage::scan_prefix`], but every block read is checked against its checksum and
    /// nothing is added to the block cache. A corrupt block returns
    /// [`StoreError::Corruption`].
    pub fn scan_verified<F>(&self, cf: &str, f: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        self.iterate(cf, b"", None, true, f)
    }

    /// [`Storage::scan_verified`] over the keys in `[from, to)` (`to` `None`: to the end).
    pub fn scan_verified_range<F>(
        &self,
        cf: &str,
        from: &[u8],
        to: Option<&[u8]>,
        f: F,
    ) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        self.iterate(cf, from, to.map(<[u8]>::to_vec), true, f)
    }

    /// Up to `parts - 1` keys that split a column family into parts of about equal size on
    /// disk, from its SST files' key ranges; empty when it is too small to split.
    pub fn split_keys(&self, cf: &str, parts: usize) -> Result<Vec<Vec<u8>>> {
        let mut files: Vec<(Vec<u8>, u64)> = self
            .db
            .live_files()?
            .into_iter()
            .filter(|f| f.column_family_name == cf)
            .filter_map(|f| f.start_key.map(|k| (k, f.size as u64)))
            .collect();
        files.sort();
        let total: u64 = files.iter().map(|(_, size)| size).sum();
        let mut keys = Vec::new();
        let mut seen = 0;
        for (start, size) in files {
            let next_cut = total * (keys.len() as u64 + 1) / parts.max(1) as u64;
            if seen >= next_cut && keys.len() + 1 < parts && seen > 0 {
                keys.push(start);
            }
            seen += size;
        }
        keys.dedup();
        Ok(keys)
    }

    /// Calls `f` for every key of the column family, newest (largest) key first, until it
    /// breaks.
    pub fn scan_reverse<F>(&self, cf: &str, f: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        let handle = self.cf(cf)?;
        let mut iter = self.db.raw_iterator_cf_opt(&handle, ReadOptions::default());
        iter.seek_to_last();
        walk(iter, Direction::Reverse, f)
    }

    /// Calls `f` for the keys in `[from, upper)` in order, until it breaks.
    fn iterate<F>(
        &self,
        cf: &str,
        from: &[u8],
        upper: Option<Vec<u8>>,
        verify: bool,
        f: F,
    ) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        let handle = self.cf(cf)?;
        let mut ro = ReadOptions::default();
        if verify {
            ro.set_verify_checksums(true);
            ro.fill_cache(false);
            ro.set_readahead_size(4 << 20);
        }
        if let Some(upper) = upper {
            ro.set_iterate_upper_bound(upper);
        }
        let mut iter = self.db.raw_iterator_cf_opt(&handle, ro);
        iter.seek(from);
        walk(iter, Direction::Forward, f)
    }

    /// Whether the column family holds no key at all.
    pub fn is_cf_empty(&self, cf: &str) -> Result<bool> {
        let mut empty = true;
        self.scan_prefix(cf, b"", |_, _| {
            empty = false;
            Ok(ControlFlow::Break(()))
        })?;
        Ok(empty)
    }

    /// RocksDB's estimate of the number of keys in a column family: constant time.
    pub fn estimate_keys(&self, cf: &str) -> Result<u64> {
        self.int_property(cf, "rocksdb.estimate-num-keys")
    }

    /// Bytes of a column family's SST files on disk (memtables not included).
    pub fn sst_bytes(&self, cf: &str) -> Result<u64> {
        self.int_property(cf, "rocksdb.total-sst-files-size")
    }

    /// Entries in a column family's memtables, active and immutable: writes that are in no
    /// SST file yet. `None` when RocksDB does not report them.
    pub fn memtable_entries(&self, cf: &str) -> Result<Option<u64>> {
        let handle = self.cf(cf)?;
        let active = self
            .db
            .property_int_value_cf(&handle, "rocksdb.num-entries-active-mem-table")?;
        let immutable = self
            .db
            .property_int_value_cf(&handle, "rocksdb.num-entries-imm-mem-tables")?;
        Ok(active.zip(immutable).map(|(a, i)| a.saturating_add(i)))
    }

    /// An integer RocksDB property of a column family; 0 when RocksDB does not report it.
    fn int_property(&self, cf: &str, property: &str) -> Result<u64> {
        let handle = self.cf(cf)?;
        Ok(self
            .db
            .property_int_value_cf(&handle, property)?
            .unwrap_or(0))
    }

    /// Whether RocksDB has a flush or compaction running or due: until it has none, the set
    /// of live files may change under a reader that lists them (a benchmark's `cp -r`).
    pub fn background_work_pending(&self) -> Result<bool> {
        for property in [
            "rocksdb.num-running-compactions",
            "rocksdb.num-running-flushes",
            "rocksdb.compaction-pending",
        ] {
            if self.db.property_int_value(property)?.unwrap_or(0) > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes every memtable to SST files.
    pub fn flush_memtables(&self) -> Result<()> {
        for name in self.column_families()? {
            let handle = self.cf(&name)?;
            self.db.flush_cf(&handle)?;
        }
        Ok(())
    }

    /// Creates a consistent point-in-time copy of the database in `dest`, which must not
    /// exist yet. SST files are hard-linked when `dest` is on the same file system.
    pub fn checkpoint(&self, dest: &Path) -> Result<()> {
        let cp = Checkpoint::new(&*self.db)?;
        cp.create_checkpoint(dest)?;
        Ok(())
    }

    /// Every SST file the database currently uses.
    pub fn live_files(&self) -> Result<Vec<LiveFile>> {
        Ok(self
            .db
            .live_files()?
            .into_iter()
            .map(|f| LiveFile {
                column_family: f.column_family_name,
                name: f.name.trim_start_matches('/').to_string(),
                size: f.size as u64,
                level: f.level,
                entries: f.num_entries,
            })
            .collect())
    }
}

/// The smallest key greater than every key starting with `prefix`; `None` for an empty or
/// all-0xFF prefix, which has no upper bound.
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// Calls `f` with each key and value from where `iter` stands, moving in `direction`, until
/// it breaks. The raw iterator lends each key and value from RocksDB's block: no copy, no
/// allocation per row (a scan of narrow rows spent a tenth of its time in them). A read
/// error (a corrupt block, say) ends the iteration and is returned.
fn walk<F>(
    mut iter: rocksdb::DBRawIteratorWithThreadMode<'_, Db>,
    direction: Direction,
    mut f: F,
) -> Result<()>
where
    F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
{
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        if f(key, value)?.is_break() {
            return Ok(());
        }
        match direction {
            Direction::Forward => iter.next(),
            Direction::Reverse => iter.prev(),
        }
    }
    Ok(iter.status()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_temp() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&dir.path().join("db"), OpenMode::Create).expect("open");
        (dir, storage)
    }

    #[test]
    fn refuses_a_path_without_a_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Storage::open(dir.path(), OpenMode::ReadWrite).expect_err("must refuse");
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
        assert!(
            !dir.path().join("CURRENT").exists(),
            "nothing may be created"
        );
    }

    #[test]
    fn column_families_are_created_and_dropped_while_others_stay_in_use() {
        let (dir, storage) = open_temp();
        storage.create_cf("a").expect("create a");
        storage.create_cf("b").expect("create b");
        storage.put("a", b"k", b"1").expect("put a");
        storage.put("b", b"k", b"2").expect("put b");
        storage.drop_cf("a").expect("drop a");
        assert!(!storage.has_cf("a"));
        assert_eq!(storage.get("b", b"k").expect("get b"), Some(b"2".to_vec()));
        drop(storage);
        let reopened = Storage::open(&dir.path().join("db"), OpenMode::ReadWrite).expect("reopen");
        assert_eq!(
            reopened.column_families().expect("list"),
            vec!["b".to_string(), "default".to_string()]
        );
        assert_eq!(reopened.get("b", b"k").expect("get"), Some(b"2".to_vec()));
    }

    #[test]
    fn prefix_scans_stop_at_the_prefix_boundary() {
        let (_dir, storage) = open_temp();
        storage.create_cf("t").expect("create");
        for key in ["a:1", "a:2", "ab:1", "b:1"] {
            storage.put("t", key.as_bytes(), b"{}").expect("put");
        }
        let mut seen = Vec::new();
        storage
            .scan_prefix("t", b"a:", |k, _| {
                seen.push(String::from_utf8_lossy(k).into_owned());
                Ok(ControlFlow::Continue(()))
            })
            .expect("scan");
        assert_eq!(seen, vec!["a:1", "a:2"]);
    }

    #[test]
    fn delete_range_removes_exactly_the_range() {
        let (_dir, storage) = open_temp();
        storage.create_cf("t").expect("create");
        for key in ["u1:1", "u1:2", "u2:1"] {
            storage.put("t", key.as_bytes(), b"{}").expect("put");
        }
        storage
            .delete_range("t", b"u1:", b"u1;")
            .expect("range delete");
        assert_eq!(storage.get("t", b"u1:1").expect("get"), None);
        assert_eq!(
            storage.get("t", b"u2:1").expect("get"),
            Some(b"{}".to_vec())
        );
    }

    #[test]
    fn memtable_entries_count_what_no_sst_file_holds_yet() {
        let (_dir, storage) = open_temp();
        storage.create_cf("t").expect("create");
        assert_eq!(storage.memtable_entries("t").expect("property"), Some(0));
        storage.put("t", b"a", b"1").expect("put");
        storage.put("t", b"b", b"2").expect("put");
        assert_eq!(storage.memtable_entries("t").expect("property"), Some(2));
        storage.flush_memtables().expect("flush");
        assert_eq!(storage.memtable_entries("t").expect("property"), Some(0));
    }

    #[test]
    fn checkpoint_and_live_files_see_flushed_data() {
        let (dir, storage) = open_temp();
        storage.create_cf("t").expect("create");
        storage.put("t", b"k", b"v").expect("put");
        storage.flush_memtables().expect("flush");
        let files = storage.live_files().expect("live files");
        assert!(
            files
                .iter()
                .any(|f| f.column_family == "t" && f.name.ends_with(".sst")),
            "{files:?}"
        );
        let cp = dir.path().join("cp");
        storage.checkpoint(&cp).expect("checkpoint");
        let copy = Storage::open(&cp, OpenMode::ReadOnly).expect("open checkpoint");
        assert_eq!(copy.get("t", b"k").expect("get"), Some(b"v".to_vec()));
        let mut n = 0;
        copy.scan_verified("t", |_, _| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        })
        .expect("verified scan");
        assert_eq!(n, 1);
    }

    #[test]
    fn upper_bound_of_prefix() {
        assert_eq!(prefix_upper_bound(b"a:"), Some(b"a;".to_vec()));
        assert_eq!(prefix_upper_bound(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_upper_bound(b""), None);
    }
}
