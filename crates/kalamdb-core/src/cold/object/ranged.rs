//! An object read by ranges, for Parquet's reader.

use std::io::Read;
use std::sync::Arc;

use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::reader::{ChunkReader, Length};

use super::Key;
use super::bucket::Bucket;

/// An object read by ranges, for Parquet's reader: the footer, a bloom filter and the pages
/// a lookup needs, each a ranged GET.
#[derive(Clone)]
pub struct RangedObject {
    bucket: Arc<Bucket>,
    key: Key,
    size: u64,
}

impl RangedObject {
    pub fn new(bucket: Arc<Bucket>, key: Key, size: u64) -> Self {
        RangedObject { bucket, key, size }
    }
}

impl Length for RangedObject {
    fn len(&self) -> u64 {
        self.size
    }
}

/// Sequential reads (page headers) fetch this much at a time.
const READ_AHEAD: u64 = 64 << 10;

impl ChunkReader for RangedObject {
    type T = RangeRead;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<RangeRead> {
        Ok(RangeRead {
            object: self.clone(),
            pos: start,
            buf: bytes::Bytes::new(),
        })
    }

    fn get_bytes(
        &self,
        start: u64,
        length: usize,
    ) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        let end = start.saturating_add(length as u64);
        self.bucket
            .get_range(&self.key, start..end)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// A forward reader over a [`RangedObject`], fetching [`READ_AHEAD`] bytes at a time.
pub struct RangeRead {
    object: RangedObject,
    pos: u64,
    buf: bytes::Bytes,
}

impl Read for RangeRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.object.size {
                return Ok(0);
            }
            let end = self.pos.saturating_add(READ_AHEAD).min(self.object.size);
            self.buf = self
                .object
                .bucket
                .get_range(&self.object.key, self.pos..end)
                .map_err(std::io::Error::other)?;
            self.pos = end;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        bytes::Buf::advance(&mut self.buf, n);
        Ok(n)
    }
}
