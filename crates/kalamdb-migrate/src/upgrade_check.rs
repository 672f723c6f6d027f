//! `kalamctl upgrade-check`: for CI. Copies a directory to scratch space, migrates the copy,
//! verifies it and queries every table. The original is only read.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{ApplyOptions, checkpoint};
use kalamdb_core::data_dir::{DataDir, DirLock};
use kalamdb_core::{Access, CoreError, Engine, Result, Session};

/// One check and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The outcome of every check.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeCheck {
    pub data_dir: String,
    pub generation: Option<super::Generation>,
    /// Where the copy was migrated (deleted afterwards unless kept).
    pub scratch: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// Runs the checks; stops at the first that fails. `scratch` must not exist or be empty.
pub fn upgrade_check(
    root: &Path,
    scratch: Option<&Path>,
    keep: bool,
    skip_invalid: bool,
) -> Result<UpgradeCheck> {
    let dir = DataDir::new(root);
    dir.check_holds_database()?;
    super::layout::check_not_open(&dir, &dir.database())?;
    if let Some(holder) = DirLock::holder(&dir)? {
        return Err(CoreError::Locked {
            path: root.display().to_string(),
            holder: format!(
                "pid {}; copying files a live process writes gives no consistent copy: stop it, or check a backup",
                holder.pid
            ),
        });
    }
    let (_tmp, base) = match scratch {
        Some(s) => (None, s.to_path_buf()),
        None => {
            let tmp = tempfile_dir(root)?;
            let path = tmp.clone();
            (Some(TempDir(tmp)), path)
        }
    };
    if base.exists()
        && std::fs::read_dir(&base)
            .map_err(|e| CoreError::io(&base, e))?
            .next()
            .is_some()
    {
        return Err(CoreError::InvalidInput(format!(
            "scratch directory {} is not empty; pick an empty or new one",
            base.display()
        )));
    }
    let copy = base.join("data");
    let mut report = UpgradeCheck {
        data_dir: root.display().to_string(),
        generation: None,
        scratch: copy.display().to_string(),
        ok: false,
        checks: Vec::new(),
    };
    let result = run_checks(&dir, &copy, skip_invalid, &mut report);
    report.ok = result.is_ok() && report.checks.iter().all(|c| c.ok);
    if let Err(e) = result {
        report.checks.push(Check {
            name: "error",
            ok: false,
            detail: e.to_string(),
        });
    }
    if keep {
        std::mem::forget(_tmp);
    } else if scratch.is_some() {
        checkpoint::remove_tree(&copy)?;
    }
    Ok(report)
}

fn run_checks(
    dir: &DataDir,
    copy: &Path,
    skip_invalid: bool,
    report: &mut UpgradeCheck,
) -> Result<()> {
    // In either layout: the database nested in the copy, the locations' folders beside it
    // (SST and Parquet files hard-linked: never written in place).
    let dirs = super::layout::location_dirs(&crate::opened::open(dir.root(), None)?.image);
    super::layout::copy_to(dir, &DataDir::new(copy), &dirs)?;
    report.checks.push(Check {
        name: "copy",
        ok: true,
        detail: format!("copied to {}", copy.display()),
    });

    let applied = super::apply(
        copy,
        ApplyOptions {
            skip_invalid,
            ..ApplyOptions::default()
        },
    );
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            report.checks.push(Check {
                name: "migrate",
                ok: false,
                detail: e.to_string(),
            });
            return Ok(());
        }
    };
    report.generation = applied.generation;
    let repaired: usize = applied.steps.iter().map(|s| s.report.repaired.len()).sum();
    let notes: Vec<&String> = applied.steps.iter().flat_map(|s| &s.report.notes).collect();
    crate::cleanup::finalize_with(copy, true)?;
    let mut detail = format!(
        "{} step(s) applied and finalized, {repaired} defect(s) repaired, {} invalid record(s) skipped",
        applied.steps.len(),
        applied.skipped_invalid
    );
    if let Some(first) = notes.first() {
        detail.push_str(&format!("; {} note(s), the first: {first}", notes.len()));
    }
    report.checks.push(Check {
        name: "migrate",
        ok: true,
        detail,
    });

    let engine = Engine::open_for_verify(copy, false)?;
    let verify = kalamdb_verify::verify(
        &engine,
        kalamdb_verify::VerifyOptions::default(),
        &|_, _, _| {},
    )?;
    drop(engine);
    let s = &verify.summary;
    let mut detail = format!("{} error(s), {} warning(s)", s.errors, s.warnings);
    for f in verify.findings.iter().take(5) {
        detail.push_str(&format!(
            "; {} {}: {}",
            f.code.as_str(),
            f.object,
            f.message
        ));
    }
    report.checks.push(Check {
        name: "verify",
        ok: s.errors == 0,
        detail,
    });
    if s.errors > 0 {
        return Ok(());
    }

    let engine = Engine::open(copy, Access::ReadOnly, "kalamctl upgrade-check")?;
    let tables = engine.catalog().tables(None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CoreError::Query(format!("cannot start an async runtime: {e}")))?;
    let mut failed = Vec::new();
    for t in &tables {
        let sql = format!("SELECT COUNT(*) AS n FROM {}.{}", t.namespace, t.table_name);
        if let Err(e) = runtime.block_on(engine.execute(&Session::admin(), &sql)) {
            failed.push(format!("{}.{}: {e}", t.namespace, t.table_name));
        }
    }
    report.checks.push(Check {
        name: "queries",
        ok: failed.is_empty(),
        detail: if failed.is_empty() {
            format!("SELECT COUNT(*) ran on all {} table(s)", tables.len())
        } else {
            failed.join("; ")
        },
    });
    Ok(())
}

/// A scratch directory next to the original (same file system, so links work), or in the
/// system's temporary directory where the original's parent is not writable.
fn tempfile_dir(root: &Path) -> Result<PathBuf> {
    let name = format!(".kalamdb-upgrade-check-{}", uuid::Uuid::now_v7().simple());
    let beside = root
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(|parent| parent.join(&name)));
    if let Some(path) = beside
        && std::fs::create_dir(&path).is_ok()
    {
        return Ok(path);
    }
    let path = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&path).map_err(|e| CoreError::io(&path, e))?;
    Ok(path)
}

/// Removes a scratch directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
