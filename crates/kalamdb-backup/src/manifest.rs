//! A backup's manifest: what it holds, sealed with its own checksum.
//!
//! A backup exists exactly when its manifest does; the manifest is written last, atomically.
//! Its `checksum` is the SHA-256 of the manifest serialized with an empty `checksum`, so a
//! flipped byte anywhere in it is found.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use kalamdb_core::{CoreError, Result};

/// The manifest layout this build writes (it reads this one and every earlier one). 2 added
/// `hot_files`.
pub const MANIFEST_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub manifest_version: u32,
    /// 1, 2, 3... in creation order within the repository.
    pub id: u64,
    /// When the point-in-time snapshot was taken (Unix ms).
    pub created_at: i64,
    pub completed_at: i64,
    /// The data directory's on-disk format version.
    pub format_version: u32,
    /// The kalamctl/kalamd build that wrote it.
    pub tool_version: String,
    pub source: Source,
    /// The `backup` job row in the source database.
    pub job_id: String,
    /// The backup whose file list let unchanged files be skipped without reading them.
    pub parent: Option<u64>,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
    /// Row counts per table, `namespace.table` → counts.
    pub tables: BTreeMap<String, TableRows>,
    /// The SST files (paths in the backup) that held each table's hot rows when they were
    /// counted: the next backup of the same database keeps a table's count when they are
    /// the same unchanged files and nothing else holds rows of it. Absent before version 2.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hot_files: BTreeMap<String, Vec<String>>,
    /// Bytes of all files.
    pub total_bytes: u64,
    /// Bytes this backup added to the repository (the rest were already there).
    pub new_bytes: u64,
    pub new_files: u64,
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The data directory, as an absolute path.
    pub data_dir: String,
    /// RocksDB's IDENTITY of the source: files are skipped by name, size and modification
    /// time only against a backup of the same database.
    pub db_identity: String,
    pub host: String,
}

/// One file of the backup. `path` is relative to the data directory; files of storage
/// locations outside it are under `external/` followed by their absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Modification time of the source file (ns); identifies an unchanged immutable file.
    pub mtime_ns: i128,
}

/// One table's rows in the backup, counted physically (soft-deleted rows included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRows {
    pub kind: String,
    /// Keys in the table's column family (the hot tier).
    pub hot_rows: u64,
    /// Rows in its Parquet files (the cold tier).
    pub cold_rows: u64,
    pub parquet_files: u64,
}

impl Manifest {
    /// Fills in `checksum` and returns the bytes to write.
    pub fn seal(&mut self) -> Result<Vec<u8>> {
        self.checksum = self.compute_checksum()?;
        serde_json::to_vec_pretty(self).map_err(|e| CoreError::Query(e.to_string()))
    }

    fn compute_checksum(&self) -> Result<String> {
        let mut unsealed = self.clone();
        unsealed.checksum = String::new();
        let bytes = serde_json::to_vec(&unsealed).map_err(|e| CoreError::Query(e.to_string()))?;
        Ok(hex(&Sha256::digest(&bytes)))
    }

    /// Parses and checks a manifest file's bytes: the reason it is unusable, if it is.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Manifest, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable: {e}"))?;
        let version = value.get("manifest_version").and_then(|v| v.as_u64());
        if version.is_some_and(|v| v > u64::from(MANIFEST_VERSION)) {
            return Err(format!(
                "manifest version {} is newer than this build's ({MANIFEST_VERSION}); upgrade kalamctl",
                version.unwrap_or_default()
            ));
        }
        let m: Manifest = serde_json::from_value(value).map_err(|e| format!("unreadable: {e}"))?;
        match m.compute_checksum() {
            Ok(sum) if sum == m.checksum => {}
            _ => return Err("its checksum does not match its content".into()),
        }
        if let Some(bad) = m.files.iter().find(|f| !is_safe_relative(&f.path)) {
            return Err(format!("file path '{}' leaves the directory", bad.path));
        }
        Ok(m)
    }

    pub fn table_rows(&self) -> u64 {
        self.tables.values().map(|t| t.hot_rows + t.cold_rows).sum()
    }
}

pub use kalamdb_core::checksum::hex;

/// A relative path with only normal components: joining it to a directory stays inside.
pub fn is_safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            id: 3,
            created_at: 1,
            completed_at: 2,
            format_version: 1,
            tool_version: "t".into(),
            source: Source {
                data_dir: "/d".into(),
                db_identity: "x".into(),
                host: "h".into(),
            },
            job_id: "backup-1".into(),
            parent: None,
            files: vec![FileEntry {
                path: "rocksdb/000010.sst".into(),
                size: 12,
                sha256: "ab".into(),
                mtime_ns: 5,
            }],
            tables: BTreeMap::new(),
            hot_files: BTreeMap::from([(
                "app.t".to_string(),
                vec!["rocksdb/000010.sst".to_string()],
            )]),
            total_bytes: 12,
            new_bytes: 12,
            new_files: 1,
            checksum: String::new(),
        }
    }

    #[test]
    fn a_sealed_manifest_parses_and_any_changed_byte_is_found() {
        let bytes = sample().seal().expect("seal");
        assert!(Manifest::parse(&bytes).is_ok());
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            assert!(Manifest::parse(&flipped).is_err(), "byte {i} flipped");
        }
    }

    #[test]
    fn a_version_1_manifest_without_hot_files_still_parses() {
        let mut m = sample();
        m.manifest_version = 1;
        m.hot_files.clear();
        let bytes = m.seal().expect("seal");
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(!text.contains("hot_files"), "{text}");
        let parsed = Manifest::parse(&bytes).expect("parses");
        assert!(parsed.hot_files.is_empty());
        let mut newer = sample();
        newer.manifest_version = MANIFEST_VERSION + 1;
        let err = Manifest::parse(&newer.seal().expect("seal")).expect_err("refused");
        assert!(err.contains("upgrade kalamctl"), "{err}");
    }

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        assert!(is_safe_relative("storage/a/b.parquet"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
        let mut m = sample();
        m.files[0].path = "../../etc/cron.d/x".into();
        let bytes = m.seal().expect("seal");
        assert!(Manifest::parse(&bytes).is_err());
    }
}
