use serde::{Deserialize, Serialize};

use crate::tolerant;
use crate::{SystemRecord, lowercase_enum};

lowercase_enum!(
    /// Where a storage location keeps its files.
    LocationType { Filesystem => "filesystem", S3 => "s3" }
);

/// `system.storage_locations`: key `loc:{location_name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageLocationRecord {
    pub location_name: String,
    pub location_type: LocationType,
    /// Path template; may contain `${user_id}`. Relative paths are under the data directory.
    pub path: String,
    #[serde(default)]
    pub credentials_ref: Option<String>,
    #[serde(default, deserialize_with = "tolerant::count")]
    pub usage_count: u64,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub created_at: i64,
    #[serde(default, deserialize_with = "tolerant::millis")]
    pub updated_at: i64,
}

impl StorageLocationRecord {
    /// Whether the location is on object storage: `location_type` `s3`, or a URL path (a
    /// legacy row may say `filesystem` with an `s3://` path).
    pub fn is_object_store(&self) -> bool {
        self.location_type == LocationType::S3 || self.path.contains("://")
    }
}

impl SystemRecord for StorageLocationRecord {
    const TABLE: &'static str = "storage_locations";
    const CF: &'static str = "system_storage_locations";
    const KEY_PREFIX: &'static str = "loc:";
    fn id(&self) -> String {
        self.location_name.clone()
    }
}
