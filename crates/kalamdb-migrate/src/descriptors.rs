//! The migration descriptors of `migrations/`, embedded in the binary, with their checksums.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use kalamdb_core::{CoreError, Result};

/// The embedded descriptor files, in the order they apply.
const FILES: [(&str, &str); 4] = [
    (
        "0001_g1_catalog_into_column_families.yaml",
        include_str!("../migrations/0001_g1_catalog_into_column_families.yaml"),
    ),
    (
        "0002_catalogstore_records_to_kalamdb_sql.yaml",
        include_str!("../migrations/0002_catalogstore_records_to_kalamdb_sql.yaml"),
    ),
    (
        "0003_repair_and_mark_format_1.yaml",
        include_str!("../migrations/0003_repair_and_mark_format_1.yaml"),
    ),
    (
        "0004_cold_manifest_and_mark_format_2.yaml",
        include_str!("../migrations/0004_cold_manifest_and_mark_format_2.yaml"),
    ),
];

/// What a step reads, writes, and leaves for `finalize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touches {
    #[serde(default)]
    pub reads: Vec<String>,
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub leaves_for_finalize: Vec<String>,
}

/// One on-disk format step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    pub id: String,
    pub name: String,
    /// The format the step starts from (`g1`, `g2`, `g3`, or a format version).
    pub from: String,
    /// The format the step ends in.
    pub to: String,
    pub description: String,
    pub touches: Touches,
    /// The file the descriptor came from.
    #[serde(skip_deserializing)]
    pub file: String,
    /// `sha256:` and the hex SHA-256 of the file's bytes.
    #[serde(skip_deserializing)]
    pub checksum: String,
}

/// The SHA-256 of `bytes` as `sha256:{hex}`.
pub fn checksum(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        kalamdb_core::checksum::hex(&Sha256::digest(bytes))
    )
}

/// Every embedded descriptor, in the order the steps apply.
pub fn all() -> Result<Vec<Descriptor>> {
    FILES
        .iter()
        .map(|(file, text)| {
            let mut d: Descriptor = serde_norway::from_str(text).map_err(|e| {
                CoreError::Query(format!("embedded migration descriptor {file}: {e}"))
            })?;
            d.file = (*file).to_string();
            d.checksum = checksum(text.as_bytes());
            Ok(d)
        })
        .collect()
}

/// The file names of the embedded descriptors.
pub fn file_names() -> Vec<&'static str> {
    FILES.iter().map(|(f, _)| *f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_parse_chain_and_match_the_migrations_folder() {
        let all = all().expect("embedded descriptors parse");
        let chain: Vec<(&str, &str)> = all
            .iter()
            .map(|d| (d.from.as_str(), d.to.as_str()))
            .collect();
        assert_eq!(chain, [("g1", "g2"), ("g2", "g3"), ("g3", "1"), ("1", "2")]);
        for d in &all {
            assert!(d.file.starts_with(&d.id), "{} names its id first", d.file);
            assert!(d.checksum.starts_with("sha256:") && d.checksum.len() == 71);
        }
        // Every file in migrations/ is embedded, and nothing else.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations/")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, file_names());
    }
}
