//! SHA-256 of files: computed while writing ([`HashingWriter`]) or by reading every byte
//! ([`sha256_file`]), as lowercase hex.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{CoreError, Result};

const CHUNK: usize = 1 << 20;

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The SHA-256 (hex) and size of a file, reading every byte.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    sha256_chunks(path, |_| Ok(()))
}

/// Reads a file to its end in 1 MiB chunks, hashing each and handing it to `each` (to copy
/// or meter it); returns the SHA-256 (hex) and size.
pub fn sha256_chunks(
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| CoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
        size = size.saturating_add(n as u64);
    }
    Ok((hex(&hasher.finalize()), size))
}

/// A SHA-256 fed in pieces (of an object read in ranges, say), with the size it saw.
#[derive(Default)]
pub struct Sha256Stream {
    hasher: Sha256,
    size: u64,
}

impl Sha256Stream {
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size = self.size.saturating_add(bytes.len() as u64);
    }

    /// The SHA-256 (hex) and size.
    pub fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.size)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, the SHA-256 (hex) and the byte count of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written = self.written.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_and_reading_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut w = HashingWriter::new(File::create(&path).expect("create"));
        w.write_all(b"hello world").expect("write");
        let (_, written_sha, n) = w.finish();
        assert_eq!(n, 11);
        let (read_sha, size) = sha256_file(&path).expect("read");
        assert_eq!((written_sha.as_str(), 11), (read_sha.as_str(), size));
        assert_eq!(
            read_sha,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
