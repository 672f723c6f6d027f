//! Writing and reading Parquet batch files.
//!
//! Files are written atomically: to a hidden temporary file in the target directory, fsynced,
//! renamed to `batch-{epoch_ms}.parquet` (a `-{n}` suffix when that name is taken), and the
//! directory is fsynced. A crash leaves either no file or a complete one. The file's SHA-256
//! is computed as it is written, for the cold-tier manifest.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use kalamdb_store::Row;

use super::arrow_rows::batch_to_rows;
use crate::checksum::HashingWriter;
use crate::{CoreError, Result};

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Parquet {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A batch file as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub size: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// Writes `batch` as a new batch file in `dir`, durably.
pub fn write_batch_file(dir: &Path, batch: &RecordBatch) -> Result<WrittenFile> {
    crate::fs::create_dir_durable(dir)?;
    let ms = kalamdb_store::now_ms();
    let tmp = dir.join(format!(".batch-{ms}-{}.parquet.tmp", std::process::id()));
    let (sha256, size) = {
        let file = File::create(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut writer =
            ArrowWriter::try_new(HashingWriter::new(file), batch.schema(), Some(props))
                .map_err(|e| parquet_err(&tmp, e))?;
        writer.write(batch).map_err(|e| parquet_err(&tmp, e))?;
        let hashing = writer.into_inner().map_err(|e| parquet_err(&tmp, e))?;
        let (file, sha256, size) = hashing.finish();
        file.sync_all().map_err(|e| CoreError::io(&tmp, e))?;
        (sha256, size)
    };
    let target = free_name(dir, ms);
    std::fs::rename(&tmp, &target).map_err(|e| CoreError::io(&target, e))?;
    crate::fs::sync_dir(dir)?;
    Ok(WrittenFile {
        path: target,
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
pub fn read_schema(path: &Path) -> Result<SchemaRef> {
    let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    Ok(builder.schema().clone())
}

/// The number of rows a file's footer records, without reading its data.
pub fn row_count(path: &Path) -> Result<u64> {
    let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Reads every row of a file as JSON rows, optionally only the named columns.
pub fn read_rows(path: &Path, columns: Option<&[&str]>) -> Result<Vec<Row>> {
    let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, e))?;
    if let Some(cols) = columns {
        let schema = builder.parquet_schema();
        let indices: Vec<usize> = (0..schema.num_columns())
            .filter(|i| cols.contains(&schema.column(*i).name()))
            .collect();
        let mask = ProjectionMask::leaves(schema, indices);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(|e| parquet_err(path, e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        rows.extend(batch_to_rows(&batch)?);
    }
    Ok(rows)
}
