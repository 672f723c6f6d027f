//! Writing and reading Parquet batch files.
//!
//! Files are written atomically: to a hidden temporary file in the target directory, fsynced,
//! renamed to `batch-{epoch_ms}.parquet` (a `-{n}` suffix when that name is taken), and the
//! directory is fsynced. A crash leaves either no file or a complete one. The file's SHA-256
//! is computed as it is written, for the cold-tier manifest.
//!
//! Every file carries a bloom filter on its row-key column, so that a lookup by key (a point
//! SELECT, an INSERT's duplicate check) skips the row groups that cannot hold it and decodes
//! the other columns only for the rows that match.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter, RowSelection, RowSelector,
};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::reader::{ChunkReader, Length};
use datafusion::parquet::schema::types::{ColumnPath, SchemaDescriptor};
use kalamdb_store::Row;

use super::ROW_ID;
use super::arrow_rows::batch_to_rows;
use super::object::RangedObject;
use super::path::ColdPath;
use crate::checksum::HashingWriter;
use crate::{CoreError, Result};

fn parquet_err(path: &impl std::fmt::Display, e: impl std::fmt::Display) -> CoreError {
    CoreError::Parquet {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// Rows per data page a batch file is written with.
const PAGE_ROWS: usize = 1024;
/// The largest dictionary a column of a batch file gets.
const DICTIONARY_BYTES: usize = 64 << 10;

/// A batch file as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: ColdPath,
    pub size: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// Writes `batch` as a new batch file in `dir`, durably: on a local disk as described above;
/// on object storage as one upload (multipart for a large file) that makes the object
/// appear, complete, only when it ends, and that is on record in `uploads` while open.
pub fn write_batch_file(
    dir: &ColdPath,
    batch: &RecordBatch,
    uploads: &super::uploads::TableUploads,
) -> Result<WrittenFile> {
    match dir {
        ColdPath::Local(dir) => write_local(dir, batch),
        ColdPath::Object(bucket, _) => {
            let ms = kalamdb_store::now_ms();
            let mut target = dir.join(&format!("batch-{ms}.parquet"));
            let mut n = 0u32;
            while target.size()?.is_some() {
                n = n.saturating_add(1);
                target = dir.join(&format!("batch-{ms}-{n}.parquet"));
            }
            let ColdPath::Object(_, key) = &target else {
                return Err(parquet_err(&target, "not an object path"));
            };
            let upload = bucket
                .writer(key.clone())
                .journaled(uploads.journal(bucket));
            let (upload, sha256, size) = write_parquet(&target, upload, batch)?;
            upload.finish()?;
            Ok(WrittenFile {
                path: target,
                size,
                sha256,
            })
        }
    }
}

/// The writer settings every batch file gets.
fn writer_properties(rows: usize) -> WriterProperties {
    // The filter is sized for the rows written (at 1% false positives), not the crate's
    // default of a million distinct values, which would make small files large.
    let keys = u64::try_from(rows).unwrap_or(u64::MAX).max(1);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_column_bloom_filter_enabled(ColumnPath::from(ROW_ID), true)
        .set_column_bloom_filter_max_ndv(ColumnPath::from(ROW_ID), keys)
        .set_column_bloom_filter_fpp(ColumnPath::from(ROW_ID), 0.01)
        // Small pages, so that a lookup by key decodes one page of each column: the page
        // index (min and max keys per page) says which.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        // A page's dictionary is read with it: keys are all distinct, so they get none,
        // and a column whose dictionary passes 64 KiB (one of mostly distinct values)
        // goes on without one, so that reading one page never means decoding a large
        // dictionary.
        .set_column_dictionary_enabled(ColumnPath::from(ROW_ID), false)
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        .build()
}

/// Writes `batch` as Parquet into `out`, hashing it; returns `out`, the SHA-256 and size.
fn write_parquet<W: std::io::Write + Send>(
    name: &impl std::fmt::Display,
    out: W,
    batch: &RecordBatch,
) -> Result<(W, String, u64)> {
    let props = writer_properties(batch.num_rows());
    let mut writer = ArrowWriter::try_new(HashingWriter::new(out), batch.schema(), Some(props))
        .map_err(|e| parquet_err(name, e))?;
    writer.write(batch).map_err(|e| parquet_err(name, e))?;
    let hashing = writer.into_inner().map_err(|e| parquet_err(name, e))?;
    Ok(hashing.finish())
}

fn write_local(dir: &Path, batch: &RecordBatch) -> Result<WrittenFile> {
    crate::fs::create_dir_durable(dir)?;
    let ms = kalamdb_store::now_ms();
    let tmp = dir.join(format!(".batch-{ms}-{}.parquet.tmp", std::process::id()));
    let (sha256, size) = {
        let file = File::create(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        let (file, sha256, size) = write_parquet(&tmp.display(), file, batch)?;
        file.sync_all().map_err(|e| CoreError::io(&tmp, e))?;
        (sha256, size)
    };
    let target = free_name(dir, ms);
    std::fs::rename(&tmp, &target).map_err(|e| CoreError::io(&target, e))?;
    crate::fs::sync_dir(dir)?;
    Ok(WrittenFile {
        path: ColdPath::Local(target),
        size,
        sha256,
    })
}

fn free_name(dir: &Path, ms: i64) -> PathBuf {
    let first = dir.join(format!("batch-{ms}.parquet"));
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("batch-{ms}-{n}.parquet")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// The Arrow schema in a file's footer.
pub fn read_schema(path: &ColdPath) -> Result<SchemaRef> {
    Ok(open(path)?.schema().clone())
}

/// The number of rows a file's footer records, without reading its data.
pub fn row_count(path: &ColdPath) -> Result<u64> {
    Ok(open(path)?.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Reads every row of a file as JSON rows, optionally only the named columns.
pub fn read_rows(path: &ColdPath, columns: Option<&[&str]>) -> Result<Vec<Row>> {
    let builder = open_whole(path)?;
    collect(path, project(builder, columns))
}

/// The rows of a file whose row key is one of `keys`, optionally only the named columns.
/// Only the row groups whose bloom filter may hold a key are read (all of them in a file
/// written without filters), and the other columns are decoded for matching rows only.
/// `None` if the file has no row-key column (a writer that kept none): the caller reads it
/// whole and finds keys its own way.
pub fn read_keyed(
    path: &ColdPath,
    keys: &Arc<HashSet<String>>,
    columns: Option<&[&str]>,
) -> Result<Option<Vec<Row>>> {
    let builder = open_indexed(path)?;
    let Some(key_column) = leaf_index(builder.parquet_schema(), ROW_ID) else {
        return Ok(None);
    };
    let mut groups = Vec::new();
    for group in 0..builder.metadata().num_row_groups() {
        let may_hold = match builder
            .get_row_group_column_bloom_filter(group, key_column)
            .map_err(|e| parquet_err(path, e))?
        {
            Some(filter) => keys.iter().any(|k| filter.check(k.as_str())),
            None => true,
        };
        if may_hold {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        return Ok(Some(Vec::new()));
    }
    // Within those, only the pages whose key range may hold one (files are written in key
    // order, so usually one page).
    let mut selectors = Vec::new();
    for group in &groups {
        let metadata = builder.metadata();
        let rows = usize::try_from(metadata.row_group(*group).num_rows()).unwrap_or(0);
        match pages_that_may_hold(metadata, *group, key_column, keys, rows) {
            Some(pages) => selectors.extend(pages),
            None => selectors.push(RowSelector::select(rows)),
        }
    }
    if selectors.iter().all(|s| s.skip) {
        return Ok(Some(Vec::new()));
    }
    let wanted = Arc::clone(keys);
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [key_column]);
    let predicate = ArrowPredicateFn::new(mask, move |batch| {
        let column = batch.column(0);
        let ids = match column.data_type() {
            DataType::Utf8 => Arc::clone(column),
            _ => datafusion::arrow::compute::cast(column, &DataType::Utf8)?,
        };
        let ids = ids.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
            datafusion::arrow::error::ArrowError::CastError(format!("{ROW_ID} is not text"))
        })?;
        Ok(ids
            .iter()
            .map(|id| Some(id.is_some_and(|id| wanted.contains(id))))
            .collect::<BooleanArray>())
    });
    let builder = project(builder, columns)
        .with_row_groups(groups)
        .with_row_selection(RowSelection::from(selectors))
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    collect(path, builder).map(Some)
}

type Builder = ParquetRecordBatchReaderBuilder<ColdReader>;

/// A batch file as Parquet's reader reads it: a local file, an object read by ranges (a
/// footer, the pages a lookup needs), or a whole object fetched at once (a full read).
pub enum ColdReader {
    File(File),
    Object(RangedObject),
    Bytes(bytes::Bytes),
}

impl Length for ColdReader {
    fn len(&self) -> u64 {
        match self {
            ColdReader::File(f) => f.len(),
            ColdReader::Object(o) => o.len(),
            ColdReader::Bytes(b) => Length::len(b),
        }
    }
}

impl ChunkReader for ColdReader {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        Ok(match self {
            ColdReader::File(f) => Box::new(f.get_read(start)?),
            ColdReader::Object(o) => Box::new(o.get_read(start)?),
            ColdReader::Bytes(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(
        &self,
        start: u64,
        length: usize,
    ) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        match self {
            ColdReader::File(f) => f.get_bytes(start, length),
            ColdReader::Object(o) => o.get_bytes(start, length),
            ColdReader::Bytes(b) => b.get_bytes(start, length),
        }
    }
}

/// A reader of `path`, and what identifies its content (size, modification time): objects
/// are read by ranges.
fn reader(path: &ColdPath) -> Result<(ColdReader, FooterKey)> {
    match path {
        ColdPath::Local(p) => {
            let file = File::open(p).map_err(|e| CoreError::io(p, e))?;
            let meta = file.metadata().map_err(|e| CoreError::io(p, e))?;
            let key = (path.to_string(), meta.len(), meta.modified().ok());
            Ok((ColdReader::File(file), key))
        }
        ColdPath::Object(b, k) => {
            let meta = b.head(k)?.ok_or_else(|| CoreError::Io {
                path: path.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            })?;
            let modified: std::time::SystemTime = meta.last_modified.into();
            let key = (path.to_string(), meta.size, Some(modified));
            let object = RangedObject::new(Arc::clone(b), k.clone(), meta.size);
            Ok((ColdReader::Object(object), key))
        }
    }
}

fn open(path: &ColdPath) -> Result<Builder> {
    let (reader, _) = reader(path)?;
    ParquetRecordBatchReaderBuilder::try_new(reader).map_err(|e| parquet_err(path, e))
}

/// For reading every row: an object is fetched whole, in one request.
fn open_whole(path: &ColdPath) -> Result<Builder> {
    let reader = match path {
        ColdPath::Local(_) => reader(path)?.0,
        ColdPath::Object(b, k) => ColdReader::Bytes(b.get(k)?),
    };
    ParquetRecordBatchReaderBuilder::try_new(reader).map_err(|e| parquet_err(path, e))
}

/// Footers parsed with their page indexes, of files read by key lately: a batch file never
/// changes once written (a new file is a new name), so a lookup reuses its footer instead of
/// parsing it again. Keyed by path, size and modification time, so a file removed and
/// another written under its name is never mistaken for it; cleared when full.
type FooterKey = (String, u64, Option<std::time::SystemTime>);
static FOOTERS: Mutex<Option<HashMap<FooterKey, ArrowReaderMetadata>>> = Mutex::new(None);
const FOOTERS_KEPT: usize = 1024;

fn open_indexed(path: &ColdPath) -> Result<Builder> {
    let (reader, key) = reader(path)?;
    let cached = FOOTERS
        .lock()
        .ok()
        .and_then(|f| f.as_ref().and_then(|f| f.get(&key).cloned()));
    let metadata = match cached {
        Some(m) => m,
        None => {
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            let m =
                ArrowReaderMetadata::load(&reader, options).map_err(|e| parquet_err(path, e))?;
            if let Ok(mut footers) = FOOTERS.lock() {
                let footers = footers.get_or_insert_with(HashMap::new);
                if footers.len() >= FOOTERS_KEPT {
                    footers.clear();
                }
                footers.insert(key, m.clone());
            }
            m
        }
    };
    Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(
        reader, metadata,
    ))
}

/// The pages of one row group's key column whose `[min, max]` may hold one of `keys`, as a
/// selection of that group's rows; `None` without a page index.
fn pages_that_may_hold(
    metadata: &ParquetMetaData,
    group: usize,
    column: usize,
    keys: &HashSet<String>,
    rows: usize,
) -> Option<Vec<RowSelector>> {
    let ColumnIndexMetaData::BYTE_ARRAY(index) =
        metadata.column_index()?.get(group)?.get(column)?
    else {
        return None;
    };
    let pages = metadata
        .offset_index()?
        .get(group)?
        .get(column)?
        .page_locations();
    let mut out = Vec::with_capacity(pages.len());
    for (i, page) in pages.iter().enumerate() {
        let start = usize::try_from(page.first_row_index).ok()?;
        let end = match pages.get(i + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => rows,
        };
        let count = end.checked_sub(start)?;
        let may_hold = match (index.min_value(i), index.max_value(i)) {
            (Some(min), Some(max)) => keys
                .iter()
                .any(|k| min <= k.as_bytes() && k.as_bytes() <= max),
            // No bounds: only a page of nulls holds no key.
            _ => !index.is_null_page(i),
        };
        out.push(if may_hold {
            RowSelector::select(count)
        } else {
            RowSelector::skip(count)
        });
    }
    Some(out)
}

fn leaf_index(schema: &SchemaDescriptor, name: &str) -> Option<usize> {
    (0..schema.num_columns()).find(|i| schema.column(*i).name() == name)
}

fn project(builder: Builder, columns: Option<&[&str]>) -> Builder {
    let Some(cols) = columns else {
        return builder;
    };
    let schema = builder.parquet_schema();
    let indices: Vec<usize> = (0..schema.num_columns())
        .filter(|i| cols.contains(&schema.column(*i).name()))
        .collect();
    let mask = ProjectionMask::leaves(schema, indices);
    builder.with_projection(mask)
}

fn collect(path: &ColdPath, builder: Builder) -> Result<Vec<Row>> {
    let reader = builder.build().map_err(|e| parquet_err(path, e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        rows.extend(batch_to_rows(&batch)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::super::uploads::Uploads;
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn batch(ids: &[&str]) -> RecordBatch {
        let n: Vec<i64> = (0..ids.len() as i64).collect();
        RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from(n)) as datafusion::arrow::array::ArrayRef,
            ),
            (ROW_ID, Arc::new(StringArray::from(ids.to_vec())) as _),
        ])
        .expect("batch")
    }

    fn keys(k: &[&str]) -> Arc<HashSet<String>> {
        Arc::new(k.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn files_carry_a_key_bloom_filter_and_keyed_reads_return_only_those_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        // In key order, as a flush writes them; `n` is each key's number.
        let mut ids: Vec<String> = (0..5000).map(|i| format!("k{i}")).collect();
        ids.sort();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let uploads = Uploads::new(dir.path().join("uploads")).of("app.t");
        let file = write_batch_file(
            &ColdPath::Local(dir.path().to_path_buf()),
            &batch(&refs),
            &uploads,
        )
        .expect("write");
        let number = |k: &str| refs.iter().position(|r| *r == k).map(|i| i as i64);

        let builder = open(&file.path).expect("open");
        let column = leaf_index(builder.parquet_schema(), ROW_ID).expect("key column");
        let filter = builder
            .get_row_group_column_bloom_filter(0, column)
            .expect("read filter")
            .expect("a bloom filter on _row_id");
        assert!(refs.iter().all(|k| filter.check(*k)), "no false negatives");
        let false_positives = (0..5000)
            .filter(|i| filter.check(format!("absent{i}").as_str()))
            .count();
        assert!(
            false_positives < 250,
            "{false_positives} of 5000 absent keys pass"
        );

        let rows = read_keyed(&file.path, &keys(&["k7", "k4999", "absent"]), None)
            .expect("read")
            .expect("keyed");
        let got: Vec<(&str, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r[ROW_ID].as_str().unwrap_or_default(),
                    r["n"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let mut want = vec![
            ("k7", number("k7").unwrap_or(-2)),
            ("k4999", number("k4999").unwrap_or(-2)),
        ];
        want.sort();
        assert_eq!(got, want);

        // The page index narrows a lookup to the one page of ~1,024 rows that may hold it.
        let builder = open_indexed(&file.path).expect("open");
        let pages = pages_that_may_hold(builder.metadata(), 0, column, &keys(&["k7"]), 5000)
            .expect("a page index");
        assert!(pages.len() >= 4, "{pages:?}");
        let selected: Vec<usize> = pages
            .iter()
            .filter(|p| !p.skip)
            .map(|p| p.row_count)
            .collect();
        assert_eq!(selected.len(), 1, "{pages:?}");
        assert!(selected[0] <= PAGE_ROWS, "{pages:?}");
        let only_n = read_keyed(&file.path, &keys(&["k3"]), Some(&["n"]))
            .expect("read")
            .expect("keyed");
        assert_eq!(only_n.len(), 1);
        assert_eq!(
            only_n[0].get("n"),
            Some(&serde_json::json!(number("k3").unwrap_or(-2)))
        );
        assert_eq!(only_n[0].get(ROW_ID), None, "projection respected");
    }

    #[test]
    fn a_file_without_a_key_column_is_left_to_the_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from(vec![1, 2])) as datafusion::arrow::array::ArrayRef,
        )])
        .expect("batch");
        let uploads = Uploads::new(dir.path().join("uploads")).of("app.t");
        let file = write_batch_file(&ColdPath::Local(dir.path().to_path_buf()), &batch, &uploads)
            .expect("write");
        assert_eq!(
            read_keyed(&file.path, &keys(&["1"]), None).expect("read"),
            None
        );
    }
}
