//! The migration's journal and history, kept in RocksDB's default column family next to the
//! format marker. Each step's writes land in one batch together with its history record and
//! the journal's progress, so a step is either wholly applied and recorded, or not at all.

use std::collections::BTreeMap;

use kalamdb_store::{Batch, DEFAULT_CF};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::image::{Image, Invalid};
use super::steps::Leftovers;

/// The journal of the run in progress; gone once the run completes.
pub const RUN_KEY: &str = "kalamdb:migration:run";
/// `kalamdb:migration:applied:{id}`: one history record per applied step.
pub const APPLIED_PREFIX: &str = "kalamdb:migration:applied:";
/// Written by `finalize`.
pub const FINALIZED_KEY: &str = "kalamdb:migration:finalized";
/// While `finalize` deletes the original engine's files from the directory's top.
pub const FINALIZING_KEY: &str = "kalamdb:migration:finalizing";

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub job_id: String,
    /// The generation the run started from.
    pub origin: String,
    /// The directory time every step uses (see [`super::steps::Ctx::now`]).
    pub now: i64,
    pub started_at: i64,
    pub plan_hash: String,
    pub skip_invalid: bool,
    pub steps_done: Vec<String>,
}

/// An applied step, with its descriptor's checksum at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub id: String,
    pub name: String,
    pub from: String,
    pub to: String,
    pub checksum: String,
    pub applied_at: i64,
    pub job_id: String,
    #[serde(default)]
    pub changes: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default)]
    pub repaired: Vec<String>,
    #[serde(default)]
    pub skipped_invalid: Vec<Invalid>,
    #[serde(default)]
    pub leftovers: Leftovers,
}

/// When `finalize` ran and what it removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizedRecord {
    pub at: i64,
    pub removed: Vec<String>,
}

fn read<T: DeserializeOwned>(image: &Image, key: &str) -> Option<T> {
    image
        .kalamdb_keys
        .get(key)
        .and_then(|b| serde_json::from_slice(b).ok())
}

pub fn run(image: &Image) -> Option<RunRecord> {
    read(image, RUN_KEY)
}

pub fn finalized(image: &Image) -> Option<FinalizedRecord> {
    read(image, FINALIZED_KEY)
}

/// Every applied step, in id order.
pub fn applied(image: &Image) -> Vec<AppliedRecord> {
    image
        .kalamdb_keys
        .iter()
        .filter(|(k, _)| k.starts_with(APPLIED_PREFIX))
        .filter_map(|(_, v)| serde_json::from_slice(v).ok())
        .collect()
}

pub fn put<T: Serialize>(batch: &mut Batch, key: &str, value: &T) -> kalamdb_core::Result<()> {
    let bytes =
        kalamdb_core::CoreError::encode_json_bytes(&format!("migration journal {key}"), value)?;
    batch.put(DEFAULT_CF, key.as_bytes(), bytes);
    Ok(())
}
