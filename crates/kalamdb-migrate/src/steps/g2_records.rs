//! Step 0002: CatalogStore keys and record shapes into kalamdb-sql keys and shapes.

use kalamdb_sql::{
    JobRecord, LiveQueryRecord, NamespaceRecord, StorageLocationRecord, SystemRecord, UserRecord,
};

use super::{Ctx, Outcome, readable_jobs, tables};
use crate::detect::Generation;
use crate::image::Image;

pub fn run(image: &Image, ctx: &Ctx<'_>) -> Outcome {
    let mut out = Outcome::default();
    out.create_missing_system_cfs(image);
    rekey::<UserRecord>(image, &mut out, |_| ());
    rekey::<LiveQueryRecord>(image, &mut out, |_| ());
    rekey::<StorageLocationRecord>(image, &mut out, |l| {
        if l.created_at == 0 {
            l.created_at = ctx.now;
        }
        if l.updated_at == 0 {
            l.updated_at = l.created_at;
        }
    });
    rekey::<NamespaceRecord>(image, &mut out, |_| ());
    rekey::<JobRecord>(image, &mut out, |_| ());
    reshape_jobs(image, ctx, &mut out);
    if ctx.origin == Generation::G2 {
        tables::infer_missing(image, ctx, &readable_jobs(image), &mut out);
    }
    out
}

/// Moves every record whose key lacks `R::KEY_PREFIX` (a CatalogStore key) to its
/// kalamdb-sql key, in the kalamdb-sql shape.
fn rekey<R: SystemRecord>(image: &Image, out: &mut Outcome, fix: impl Fn(&mut R)) {
    let records = image.records(R::CF);
    let entity = R::TABLE;
    let mut taken = std::collections::BTreeSet::new();
    for (key, bytes) in records {
        if key.starts_with(R::KEY_PREFIX) {
            continue;
        }
        let mut record: R = match read_legacy(key, bytes) {
            Ok(r) => r,
            Err(e) => {
                out.invalid(
                    R::CF,
                    key,
                    format!("cannot be read as a {entity} record: {e}"),
                );
                continue;
            }
        };
        fix(&mut record);
        let id = record.id();
        let new_key = format!("{}{id}", R::KEY_PREFIX);
        if id.is_empty() {
            out.invalid(R::CF, key, format!("the {entity} record has an empty id"));
            continue;
        }
        if records.contains_key(&new_key) || !taken.insert(new_key.clone()) {
            out.invalid(
                R::CF,
                key,
                format!("another {entity} record already has the key {new_key}"),
            );
            continue;
        }
        let Some(bytes) = out.encode(R::CF, key, &record) else {
            continue;
        };
        out.delete(R::CF, key);
        out.put(R::CF, &new_key, bytes);
        out.count(entity, "rekeyed and reshaped");
    }
}

/// Reads a CatalogStore record. Namespace rows may lack `namespace_id`, which is their key.
fn read_legacy<R: SystemRecord>(key: &str, bytes: &[u8]) -> Result<R, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if R::CF == NamespaceRecord::CF
        && let serde_json::Value::Object(m) = &mut value
    {
        let name = m
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or(key)
            .to_string();
        m.entry("namespace_id").or_insert(name.clone().into());
        m.entry("name").or_insert(name.into());
    }
    serde_json::from_value(value)
}

/// Jobs keep `job:{id}`; their shape changes (`table_name` "" for null, `parameters` an
/// array, milliseconds).
fn reshape_jobs(image: &Image, ctx: &Ctx<'_>, out: &mut Outcome) {
    for (key, bytes) in image.records(JobRecord::CF) {
        let Some(id) = key.strip_prefix(JobRecord::KEY_PREFIX) else {
            continue;
        };
        if Some(id) == ctx.job_id {
            continue;
        }
        match serde_json::from_slice::<JobRecord>(bytes) {
            Ok(job) => {
                if out.put_record(image, &job) {
                    out.count("jobs", "reshaped");
                }
            }
            Err(e) => out.invalid(JobRecord::CF, key, format!("cannot be read as a job: {e}")),
        }
    }
}
