//! The steps, one per descriptor in `migrations/`. Each is a pure function of an [`Image`]:
//! it returns the writes to make and a report, and never touches the disk itself.

mod bounds;
mod cold_manifest;
mod g1_catalog;
mod g2_records;
mod g3_repair;
mod tables;

use std::collections::BTreeMap;

use kalamdb_sql::{JobRecord, SystemRecord};
use serde::{Deserialize, Serialize};

use super::detect::Generation;
use super::image::{Image, Invalid, Op};
use kalamdb_core::data_dir::DataDir;
use kalamdb_core::{CoreError, Result};

/// What a step sees besides the image.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// The generation the run started from.
    pub origin: Generation,
    /// The directory's last recorded activity (ms): the time given to records that lack one,
    /// so a resumed run writes exactly what an uninterrupted one does.
    pub now: i64,
    /// The migration's own job row, which the steps leave alone.
    pub job_id: Option<&'a str>,
    pub dir: &'a DataDir,
}

/// What `finalize` removes after a step: never data a table still owns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leftovers {
    /// Empty data column families of dropped tables.
    #[serde(default)]
    pub column_families: Vec<String>,
    /// Parquet files that dropped tables left behind.
    #[serde(default)]
    pub files: Vec<String>,
}

/// What a step changes, per entity and action, and what it repaired or could not convert.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepReport {
    /// `entity -> action -> count`, for example `users -> rekeyed -> 3`.
    pub changes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Known defects of the original engine that the step repairs.
    pub repaired: Vec<String>,
    /// Things reported that neither block nor change anything.
    pub notes: Vec<String>,
    /// Records the step cannot convert. `apply` refuses unless `--skip-invalid`.
    pub invalid: Vec<Invalid>,
    pub leftovers: Leftovers,
}

/// A step's writes and report.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ops: Vec<Op>,
    pub report: StepReport,
}

impl Outcome {
    pub(crate) fn count(&mut self, entity: &str, action: &str) {
        *self
            .report
            .changes
            .entry(entity.to_string())
            .or_default()
            .entry(action.to_string())
            .or_default() += 1;
    }

    pub(crate) fn put(&mut self, cf: &str, key: &str, value: Vec<u8>) {
        self.ops.push(Op::Put {
            cf: cf.to_string(),
            key: key.to_string(),
            value,
        });
    }

    pub(crate) fn delete(&mut self, cf: &str, key: &str) {
        self.ops.push(Op::Delete {
            cf: cf.to_string(),
            key: key.to_string(),
        });
    }

    /// Writes `record` under its key unless the image already holds exactly these bytes;
    /// returns whether it wrote.
    /// A record that cannot be encoded is reported as invalid (so `apply` refuses it like any
    /// other), never written as empty bytes.
    pub(crate) fn put_record<R: SystemRecord>(&mut self, image: &Image, record: &R) -> bool {
        let key = format!("{}{}", R::KEY_PREFIX, record.id());
        let Some(bytes) = self.encode(R::CF, &key, record) else {
            return false;
        };
        if image.records(R::CF).get(&key) == Some(&bytes) {
            return false;
        }
        self.put(R::CF, &key, bytes);
        true
    }

    /// `value` as JSON bytes; on failure, reports `cf`/`key` as invalid and gives `None`.
    pub(crate) fn encode<T: serde::Serialize + ?Sized>(
        &mut self,
        cf: &str,
        key: &str,
        value: &T,
    ) -> Option<Vec<u8>> {
        match serde_json::to_vec(value) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.invalid(cf, key, format!("cannot be encoded: {e}"));
                None
            }
        }
    }

    pub(crate) fn invalid(&mut self, cf: &str, key: &str, reason: impl Into<String>) {
        self.report.invalid.push(Invalid {
            column_family: cf.to_string(),
            key: key.to_string(),
            reason: reason.into(),
        });
    }

    pub(crate) fn create_missing_system_cfs(&mut self, image: &Image) {
        for cf in kalamdb_sql::SYSTEM_COLUMN_FAMILIES {
            if !image.all_cfs.contains(cf) {
                self.ops.push(Op::CreateCf(cf.to_string()));
            }
        }
    }
}

/// Runs the step with descriptor id `id`.
pub fn run(id: &str, image: &Image, ctx: &Ctx<'_>) -> Result<Outcome> {
    match id {
        "0001" => Ok(g1_catalog::run(image, ctx)),
        "0002" => Ok(g2_records::run(image, ctx)),
        "0003" => g3_repair::run(image, ctx),
        "0004" => cold_manifest::run(image, ctx),
        other => Err(CoreError::Query(format!(
            "migration {other} has a descriptor but no step in this build"
        ))),
    }
}

/// The ids of the steps that take `origin` to the current format, in order.
pub fn chain(origin: Generation) -> &'static [&'static str] {
    match origin {
        Generation::G1 => &["0001", "0002", "0003", "0004"],
        Generation::G2 => &["0002", "0003", "0004"],
        Generation::G3 => &["0003", "0004"],
        Generation::Format1 => &["0004"],
    }
}

/// Where a table's Parquet files live, from the image's locations; `None` for a template
/// that cannot be used. A template on object storage comes back without its client:
/// [`resolved`] attaches it.
pub(crate) fn template_of(
    t: &kalamdb_sql::TableRecord,
    kind: kalamdb_store::TableKind,
    locations: &[kalamdb_sql::StorageLocationRecord],
) -> Option<kalamdb_core::cold::paths::StorageTemplate> {
    use kalamdb_core::cold::paths::StorageTemplate;
    let location = kalamdb_core::catalog::location_of(t);
    match locations.iter().find(|l| l.location_name == location) {
        Some(l) => Some(StorageTemplate::for_location(
            &l.path,
            kind,
            &t.namespace,
            &t.table_name,
        )),
        None => StorageTemplate::for_path(location, kind, &t.namespace, &t.table_name).ok(),
    }
}

/// `template` with the client of its bucket attached, reached with the credentials its
/// location names (a local template comes back as it is).
pub(crate) fn resolved(
    template: kalamdb_core::cold::paths::StorageTemplate,
    t: &kalamdb_sql::TableRecord,
    locations: &[kalamdb_sql::StorageLocationRecord],
) -> Result<kalamdb_core::cold::paths::StorageTemplate> {
    if !template.is_object() {
        return Ok(template);
    }
    let location = kalamdb_core::catalog::location_of(t);
    let credentials = locations
        .iter()
        .find(|l| l.location_name == location)
        .and_then(|l| l.credentials_ref.as_deref());
    template.resolve(credentials, location)
}

/// Every readable record of a system table in the image.
pub(crate) fn readable<R: SystemRecord>(image: &Image) -> Vec<R> {
    image
        .records(R::CF)
        .values()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect()
}

/// Every job row the tolerant reader can read, for deciding which tables were dropped.
pub(crate) fn readable_jobs(image: &Image) -> Vec<JobRecord> {
    image
        .records(JobRecord::CF)
        .values()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect()
}

/// Whether a completed drop job says `ns.table` was dropped after `created_at` (when known).
/// The original engine named such jobs `drop_table:{ns}:{table}`.
pub(crate) fn dropped_by_job(jobs: &[JobRecord], ns: &str, table: &str, created_at: i64) -> bool {
    let id = format!("drop_table:{ns}:{table}");
    let dotted = format!("{ns}.{table}");
    let coloned = format!("{ns}:{table}");
    jobs.iter().any(|j| {
        let names_it = j.job_id == id
            || (j.job_type.contains("drop") && (j.table_name == dotted || j.table_name == coloned));
        names_it
            && j.status == kalamdb_sql::JobStatus::Completed
            && (created_at == 0 || j.start_time >= created_at)
    })
}

/// The directory's last recorded activity: the latest timestamp any catalog record holds.
pub fn directory_time(image: &Image) -> i64 {
    const FIELDS: [&str; 6] = [
        "created_at",
        "updated_at",
        "start_time",
        "end_time",
        "heartbeat_at",
        "current_version_created_at",
    ];
    let mut latest = 0;
    let mut consider = |v: &serde_json::Value| {
        if let serde_json::Value::Object(m) = v {
            for f in FIELDS {
                if let Some(ms) = m.get(f).and_then(kalamdb_sql::tolerant::millis_from_json) {
                    latest = latest.max(ms);
                }
            }
        }
    };
    for records in image.catalog.values() {
        for bytes in records.values() {
            if let Ok(v) = serde_json::from_slice(bytes) {
                consider(&v);
            }
        }
    }
    if let Some(conf) = &image.conf {
        for bytes in conf.values() {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(bytes) {
                consider(&serde_json::Value::Object(m.clone()));
                for v in m.values() {
                    consider(v);
                }
            }
        }
    }
    latest
}
