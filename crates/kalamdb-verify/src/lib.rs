//! `kalamctl verify`: one read-only integrity scan across every layer of a data directory,
//! reporting every inconsistency at once as [`Finding`]s with stable codes.
//!
//! The scan opens RocksDB read-only, so it is safe next to a running kalamd. With `repair`,
//! it opens read-write (taking the directory's lock) and fixes only the safe classes (see
//! [`Code::repairable`]), listing exactly what it changed.

mod catalog;
mod cold;
mod data;
mod findings;
mod json_shape;
mod repair;
mod state;
mod unrecorded;

use std::collections::BTreeMap;

use serde::Serialize;

pub use findings::{Code, Finding, Severity};
pub use repair::Repair;

use kalamdb_core::{Engine, Result};

/// Row counts of one table (per user for user tables).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableCounts {
    /// Keys in the table's column family, whether or not their rows passed the checks: the
    /// physical count a backup's manifest records.
    pub keys: u64,
    /// Rows in RocksDB (the hot tier) that passed the checks, soft-deleted ones included.
    pub hot_rows: u64,
    /// Of those, rows with `_deleted = true`.
    pub hot_deleted: u64,
    /// User tables: hot rows per user id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, UserCounts>,
    pub parquet_files: u64,
    pub parquet_bytes: u64,
    /// Rows the table's Parquet files hold, by their footers.
    pub parquet_rows: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UserCounts {
    pub rows: u64,
    pub deleted: u64,
}

/// What the scan covered, and what it found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub errors: u64,
    pub warnings: u64,
    pub column_families: u64,
    pub tables: u64,
    pub keys_scanned: u64,
    pub bytes_scanned: u64,
    pub parquet_files: u64,
    /// Hot-tier counts per table, `ns.table` → counts.
    pub table_counts: BTreeMap<String, TableCounts>,
    pub duration_ms: u64,
}

/// The outcome of a scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// With `repair`: one line per change made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
    /// With `repair`: findings of a repairable class that are still there after the repair
    /// (the scan runs again after repairing), each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
    pub fn has_warnings(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Warning)
    }
}

/// How to scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Fix the safe classes of finding (the engine must be open read-write).
    pub repair: bool,
    /// Skip reading every byte of each Parquet batch file for its SHA-256 (sizes, footers
    /// and schemas are still checked).
    pub fast: bool,
}

/// Progress of a scan: called with (column families done, of how many, bytes so far).
pub type Progress<'a> = &'a dyn Fn(u64, u64, u64);

/// The scan's working state: findings so far, and the counts.
pub(crate) struct Scan<'a> {
    pub engine: &'a Engine,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

impl Scan<'_> {
    pub fn report(&mut self, code: Code, object: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding::new(code, object, message));
    }
}

/// Runs every check. Read-only unless `repair`, in which case the safe classes are fixed
/// afterwards (the engine must then be open read-write) and the scan runs again: the
/// report's findings are what is left after the repair, never what was there before it.
pub fn verify(engine: &Engine, opts: VerifyOptions, progress: Progress<'_>) -> Result<Report> {
    let started = std::time::Instant::now();
    let (mut findings, mut summary) = scan_once(engine, opts.fast, progress)?;
    let (mut repaired, mut skipped) = (Vec::new(), Vec::new());
    if opts.repair {
        repaired = Repair::new(engine).apply(&findings)?;
        let before = findings;
        (findings, summary) = scan_once(engine, opts.fast, &|_, _, _| {})?;
        for f in before.iter().filter(|f| f.code.repairable()) {
            if findings
                .iter()
                .any(|g| g.code == f.code && g.object == f.object)
            {
                skipped.push(format!(
                    "{} {}: still present after the repair ({})",
                    f.code.as_str(),
                    f.object,
                    f.message
                ));
            }
        }
    }
    summary.errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count() as u64;
    summary.warnings = (findings.len() as u64).saturating_sub(summary.errors);
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Report {
        findings,
        summary,
        repaired,
        skipped,
    })
}

/// One scan of every layer: the findings, sorted, and the counts.
fn scan_once(
    engine: &Engine,
    fast: bool,
    progress: Progress<'_>,
) -> Result<(Vec<Finding>, Summary)> {
    let mut scan = Scan {
        engine,
        findings: Vec::new(),
        summary: Summary::default(),
    };
    state::check_marker(&mut scan)?;
    let catalog = catalog::check(&mut scan)?;
    data::check(&mut scan, &catalog, progress)?;
    cold::check(&mut scan, &catalog, fast)?;
    state::check_leftovers(&mut scan, &catalog)?;

    let Scan {
        mut findings,
        summary,
        ..
    } = scan;
    findings.sort_by(|a, b| {
        (a.severity, a.code.as_str(), &a.object).cmp(&(b.severity, b.code.as_str(), &b.object))
    });
    Ok((findings, summary))
}
