//! The format marker: which on-disk format a directory holds, and which tool wrote it.

use kalamdb_store::{Batch, DEFAULT_CF, Storage};
use serde::{Deserialize, Serialize};

use crate::{Result, SqlError};

/// The on-disk format this build reads and writes. See `specs/format.md`.
pub const CURRENT_FORMAT_VERSION: u32 = 2;

/// The marker's key in RocksDB's `default` column family.
pub const FORMAT_MARKER_KEY: &str = "kalamdb:format";

/// The format marker's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatMarker {
    pub format_version: u32,
    /// `kalamdb <version>` of the tool that last wrote the marker.
    pub written_by: String,
    #[serde(deserialize_with = "crate::tolerant::millis")]
    pub created_at: i64,
    #[serde(deserialize_with = "crate::tolerant::millis")]
    pub updated_at: i64,
}

/// What a directory's marker says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatState {
    /// The marker names the current format.
    Current(FormatMarker),
    /// The marker names an older format that a migration must upgrade.
    Older(FormatMarker),
    /// The marker names a format newer than this build understands.
    Newer(FormatMarker),
    /// There is no marker: a legacy (G1, G2 or original-engine G3) directory.
    Unmarked,
    /// A marker is present but cannot be read.
    Unreadable(String),
}

/// The version string this build writes into markers.
pub fn tool_version() -> String {
    format!("kalamdb {}", env!("CARGO_PKG_VERSION"))
}

impl FormatMarker {
    pub fn read(storage: &Storage) -> Result<Option<FormatMarker>> {
        match storage.get(DEFAULT_CF, FORMAT_MARKER_KEY.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| SqlError::Malformed {
                        table: "format marker",
                        key: FORMAT_MARKER_KEY.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    pub fn state(storage: &Storage) -> Result<FormatState> {
        Ok(match Self::read(storage) {
            Ok(None) => FormatState::Unmarked,
            Err(SqlError::Malformed { reason, .. }) => FormatState::Unreadable(reason),
            Err(e) => return Err(e),
            Ok(Some(m)) if m.format_version == CURRENT_FORMAT_VERSION => FormatState::Current(m),
            Ok(Some(m)) if m.format_version > CURRENT_FORMAT_VERSION => FormatState::Newer(m),
            Ok(Some(m)) => FormatState::Older(m),
        })
    }

    /// A marker for the current format, written now.
    pub fn current(created_at: i64, now: i64) -> FormatMarker {
        Self::version(CURRENT_FORMAT_VERSION, created_at, now)
    }

    /// A marker for `format_version` (a migration step that ends in an older format).
    pub fn version(format_version: u32, created_at: i64, now: i64) -> FormatMarker {
        FormatMarker {
            format_version,
            written_by: tool_version(),
            created_at,
            updated_at: now,
        }
    }

    /// Adds this marker to `batch`: the directory is marked exactly when the batch's other
    /// writes land.
    pub fn put_in(&self, batch: &mut Batch) -> Result<()> {
        batch.put(DEFAULT_CF, FORMAT_MARKER_KEY.as_bytes(), self.encode()?);
        Ok(())
    }

    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| crate::SqlError::Encode {
            table: "format marker",
            id: FORMAT_MARKER_KEY.to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes a marker for the current format, keeping the original creation time.
    pub fn write_current(storage: &Storage) -> Result<()> {
        let now = kalamdb_store::now_ms();
        let created_at = match Self::read(storage) {
            Ok(Some(m)) => m.created_at,
            _ => now,
        };
        let marker = FormatMarker {
            format_version: CURRENT_FORMAT_VERSION,
            written_by: tool_version(),
            created_at,
            updated_at: now,
        };
        storage.put(DEFAULT_CF, FORMAT_MARKER_KEY.as_bytes(), &marker.encode()?)?;
        Ok(())
    }
}
