//! Table options past the bounds this build enforces when they are given (`kalamdb_core::limits`):
//! a directory written before the bounds existed may hold them. Time arithmetic saturates, so
//! such a value never moves a cutoff into the future; it is still brought within its bound,
//! and reported, so the catalog holds only values a `CREATE TABLE` would accept.

use kalamdb_sql::{FlushPolicy, TableRecord};

use super::Outcome;
use crate::image::Image;
use kalamdb_core::limits::{MAX_COUNT, MAX_HOURS, MAX_SECONDS};

/// Clamps every out-of-bound option of `tables`, writing and reporting each table it changes.
pub fn clamp_options(image: &Image, tables: &mut [TableRecord], out: &mut Outcome) {
    for t in tables.iter_mut() {
        let mut fixed = Vec::new();
        clamp(&mut t.ttl_seconds, MAX_SECONDS, "TTL_SECONDS", &mut fixed);
        clamp(&mut t.max_buffer, MAX_COUNT, "MAX_BUFFER", &mut fixed);
        clamp(
            &mut t.deleted_retention_hours,
            MAX_HOURS,
            "DELETED_RETENTION hours",
            &mut fixed,
        );
        if let Ok(Some(policy)) = t.flush_policy() {
            let clamped = match policy {
                FlushPolicy::RowLimit { row_limit } => FlushPolicy::RowLimit {
                    row_limit: row_limit.min(MAX_COUNT),
                },
                FlushPolicy::TimeInterval { interval_seconds } => FlushPolicy::TimeInterval {
                    interval_seconds: interval_seconds.min(MAX_SECONDS),
                },
                FlushPolicy::Combined {
                    row_limit,
                    interval_seconds,
                } => FlushPolicy::Combined {
                    row_limit: row_limit.min(MAX_COUNT),
                    interval_seconds: interval_seconds.min(MAX_SECONDS),
                },
            };
            if clamped != policy
                && let Ok(text) = serde_json::to_string(&clamped)
            {
                fixed.push(format!("FLUSH_POLICY {} -> {text}", t.flush_policy));
                t.flush_policy = text;
            }
        }
        if !fixed.is_empty() {
            out.report.repaired.push(format!(
                "table {}.{}: past its bound, clamped: {}",
                t.namespace,
                t.table_name,
                fixed.join("; ")
            ));
            out.put_record(image, &*t);
            out.count("tables", "options clamped");
        }
    }
}

fn clamp(value: &mut Option<u64>, max: u64, what: &str, fixed: &mut Vec<String>) {
    if let Some(v) = value.as_mut()
        && *v > max
    {
        fixed.push(format!("{what} {v} -> {max}"));
        *v = max;
    }
}
