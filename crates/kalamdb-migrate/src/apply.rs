//! `kalamctl migrate apply`: nest the original layout (or copy it with `--to`), take the
//! checkpoint, then apply each pending step in one write batch with its journal progress.

use kalamdb_core::data_dir::{DataDir, DirLock, Layout};
use kalamdb_core::jobs::{self, Job, Observer, job_type};
use kalamdb_core::{CoreError, Engine, Result};
use kalamdb_sql::{JobProgress, JobRecord, SystemRecord as _};
use kalamdb_store::{Batch, now_ms};
use serde::Serialize;
use serde_json::json;

use crate::checkpoint;
use crate::descriptors::Descriptor;
use crate::detect::Generation;
use crate::image::{Image, Invalid, Op};
use crate::journal::{self, AppliedRecord, RunRecord};
use crate::layout::{self, LayoutPlan};
use crate::opened::{Opened, Standing, open};
use crate::planning::{Plan, PlannedStep, ctx, pending, plan, plan_hash, simulate};
use crate::steps::{self, Ctx};
use std::time::Instant;

/// What `apply` asks for.
#[derive(Default)]
pub struct ApplyOptions {
    pub plan_hash: Option<String>,
    pub skip_invalid: bool,
    pub observer: Option<Observer>,
    /// Migrate a copy in this new directory, leaving the original untouched.
    pub to: Option<std::path::PathBuf>,
}

/// `kalamctl migrate apply`.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub data_dir: String,
    /// `applied`, or `up_to_date` when there was nothing to do.
    pub state: &'static str,
    pub generation: Option<Generation>,
    /// Whether the original engine's layout was nested first (in place).
    pub nested: bool,
    /// With `--to`: the original, untouched.
    pub copied_from: Option<String>,
    pub job_id: Option<String>,
    /// Whether this run continued one that had stopped part-way.
    pub resumed: bool,
    pub steps: Vec<PlannedStep>,
    pub skipped_invalid: usize,
    pub checkpoint: Option<String>,
    pub duration_ms: u64,
}

impl ApplyReport {
    /// Nothing to do: the directory is already in the current format.
    fn up_to_date(data_dir: String, started: std::time::Instant) -> ApplyReport {
        ApplyReport {
            data_dir,
            state: "up_to_date",
            generation: None,
            nested: false,
            copied_from: None,
            job_id: None,
            resumed: false,
            steps: Vec::new(),
            skipped_invalid: 0,
            checkpoint: None,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `kalamctl migrate apply`.
///
/// Whether to refuse is decided first, read-only, exactly as `plan` decides it: a refusal
/// (unrecognised, mixed or newer directory, invalid records, a changed plan) opens nothing
/// for writing, not even the lock file. The read-write run then checks that the directory
/// still plans the same.
pub fn apply(root: &std::path::Path, mut opts: ApplyOptions) -> Result<ApplyReport> {
    let started = Instant::now();
    let decided = plan(root)?;
    if let Some(expected) = &opts.plan_hash
        && *expected != decided.hash
    {
        return Err(CoreError::PlanChanged {
            expected: expected.clone(),
            actual: decided.hash,
        });
    }
    if decided.generation.is_none() {
        return Ok(ApplyReport::up_to_date(decided.data_dir, started));
    }
    if let Some(first) = decided
        .steps
        .iter()
        .flat_map(|s| &s.report.invalid)
        .next()
        .filter(|_| !opts.skip_invalid)
    {
        return Err(CoreError::InvalidRecords {
            count: decided.invalid,
            first: format!(
                "{} key {:?}: {}",
                first.column_family, first.key, first.reason
            ),
        });
    }
    if let Some(to) = opts.to.take() {
        return apply_to(root, &to, decided, opts);
    }
    let nested = match &decided.layout {
        Some(layout) => {
            nest_in_place(root, layout)?;
            true
        }
        None => false,
    };
    let opts = ApplyOptions {
        plan_hash: Some(decided.hash),
        ..opts
    };
    let mut o = open(root, Some("kalamctl migrate apply"))?;
    let path = o.path();
    let (origin, run) = match o.standing()? {
        Standing::Current(_) => {
            return Ok(ApplyReport::up_to_date(path, started));
        }
        Standing::Legacy { origin, run } => (origin, run),
    };
    if matches!(origin, Generation::G2 | Generation::G3) {
        o.image.infer_tables(&o.storage)?;
    }
    let pending = pending(origin, run.as_ref())?;
    let resumed = run.is_some();
    let (run, precomputed) = match run {
        Some(run) => {
            if let Some(expected) = &opts.plan_hash
                && *expected != run.plan_hash
            {
                return Err(CoreError::PlanChanged {
                    expected: expected.clone(),
                    actual: run.plan_hash,
                });
            }
            (run, None)
        }
        None => {
            let now = steps::directory_time(&o.image);
            let hash = plan_hash(&o.image, origin, &pending);
            if let Some(expected) = &opts.plan_hash
                && *expected != hash
            {
                return Err(CoreError::PlanChanged {
                    expected: expected.clone(),
                    actual: hash,
                });
            }
            // Everything is decided before anything is written.
            let outcomes = simulate(&o.image, &ctx(&o, origin, now, None), &pending)?;
            let invalid: Vec<&Invalid> = outcomes.iter().flat_map(|s| &s.report.invalid).collect();
            if let Some(first) = invalid.first()
                && !opts.skip_invalid
            {
                return Err(CoreError::InvalidRecords {
                    count: invalid.len(),
                    first: format!(
                        "{} key {:?}: {}",
                        first.column_family, first.key, first.reason
                    ),
                });
            }
            // A directory nested from the original layout keeps its original files at its
            // top: they are the way back.
            if !checkpoint::has_original(&o.dir) {
                checkpoint::create(&o.storage, &o.dir)?;
            }
            kalamdb_core::fail::point("migrate.checkpoint");
            let run = RunRecord {
                job_id: format!("{}-{}", job_type::MIGRATION, uuid::Uuid::now_v7().simple()),
                origin: origin.as_str().to_string(),
                now,
                started_at: now_ms(),
                plan_hash: hash,
                skip_invalid: opts.skip_invalid,
                steps_done: Vec::new(),
            };
            let mut batch = Batch::new();
            journal::put(&mut batch, journal::RUN_KEY, &run)?;
            o.storage.write(batch)?;
            kalamdb_core::fail::point("migrate.journal");
            // The outcomes just computed are what the steps would compute again: the job row
            // written next is the only difference, and steps leave it alone.
            (run, Some(outcomes))
        }
    };
    o.storage.create_cf(JobRecord::CF)?;
    let lock = o
        .lock
        .take()
        .ok_or_else(|| CoreError::Query("migration lock missing".into()))?;
    let engine = Engine::for_migration(o.dir.clone(), o.storage.clone(), lock);
    let total = (run.steps_done.len() + pending.len()) as u64;
    let mut job = Job::adopt(&engine, job_record(&engine, &run, total)?)?;
    job.observe(opts.observer);
    let ctx = ctx(&o, origin, run.now, Some(&run.job_id));
    let result = run_steps(&o, &ctx, run.clone(), &pending, precomputed, job, started);
    let (steps, skipped) = result?;
    Ok(ApplyReport {
        data_dir: path,
        state: "applied",
        generation: Some(origin),
        nested,
        copied_from: None,
        job_id: Some(run.job_id),
        resumed,
        steps,
        skipped_invalid: skipped,
        checkpoint: checkpoint::rollback_target(&o.dir),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Nests a directory in the original engine's layout, in place, under the lock.
pub(crate) fn nest_in_place(root: &std::path::Path, plan: &LayoutPlan) -> Result<()> {
    let dir = DataDir::new(root);
    let path = dir.root().display();
    if let Some(why) = &plan.blocked {
        return Err(CoreError::Conflict(format!(
            "{path} is in the original engine's layout and {why}; migrate a copy into a new data directory instead, leaving it untouched: `kalamctl migrate apply --data-dir {path} --to NEW_DIR`"
        )));
    }
    layout::check_not_open(&dir, dir.root())?;
    let _lock = DirLock::acquire(&dir, "kalamctl migrate apply")?;
    // Another run may have nested it meanwhile.
    if dir.layout() == Layout::Original {
        layout::nest(&dir)?;
    }
    Ok(())
}

/// `apply --to NEW`: copies the legacy directory into `to` (or goes on with a copy a killed
/// run made there) and migrates the copy. The original is only read.
pub(crate) fn apply_to(
    root: &std::path::Path,
    to: &std::path::Path,
    decided: Plan,
    opts: ApplyOptions,
) -> Result<ApplyReport> {
    let (src, dst) = (DataDir::new(root), DataDir::new(to));
    let source = root.canonicalize().map_err(|e| CoreError::io(root, e))?;
    let target = std::path::absolute(to).map_err(|e| CoreError::io(to, e))?;
    if target.starts_with(&source) {
        return Err(CoreError::InvalidInput(format!(
            "--to {} is inside {}; pick a directory outside the original",
            to.display(),
            root.display()
        )));
    }
    let plan_hash = match layout::target(&src, &dst)? {
        // The copy's journal holds the plan it started from.
        layout::Target::Copied => None,
        fresh_or_partial => {
            if matches!(fresh_or_partial, layout::Target::Partial) {
                layout::discard_partial(&dst)?;
            }
            layout::check_not_open(&src, &src.database())?;
            layout::copy_to(&src, &dst, &decided.location_dirs)?;
            Some(decided.hash)
        }
    };
    let mut report = apply(
        to,
        ApplyOptions {
            plan_hash,
            skip_invalid: opts.skip_invalid,
            observer: opts.observer,
            to: None,
        },
    )?;
    report.copied_from = Some(root.display().to_string());
    Ok(report)
}

/// The migration's job row: the one a stopped run wrote, or a new one.
pub(crate) fn job_record(engine: &Engine, run: &RunRecord, total: u64) -> Result<JobRecord> {
    if let Some(existing) = engine.sql().jobs().get(&run.job_id)? {
        return Ok(existing);
    }
    let mut record = jobs::new_record(
        run.job_id.clone(),
        job_type::MIGRATION,
        "",
        vec![
            run.origin.clone(),
            kalamdb_sql::CURRENT_FORMAT_VERSION.to_string(),
        ],
        run.started_at,
    );
    record.progress = Some(JobProgress {
        items_total: total,
        ..JobProgress::default()
    });
    Ok(record)
}

/// Applies each pending step in one batch with its history record and the journal's
/// progress; the last batch also writes the marker, ends the journal and completes the job.
pub(crate) fn run_steps(
    o: &Opened,
    ctx: &Ctx<'_>,
    mut run: RunRecord,
    pending: &[Descriptor],
    precomputed: Option<Vec<steps::Outcome>>,
    job: Job,
    started: Instant,
) -> Result<(Vec<PlannedStep>, usize)> {
    let mut job = Some(job);
    let mut precomputed = precomputed.map(Vec::into_iter);
    // Only needed to compute steps; a fresh run has them already.
    let mut image = if precomputed.is_some() {
        Image::default()
    } else {
        o.image.clone()
    };
    let mut done = Vec::new();
    let mut skipped = 0;
    let total = (run.steps_done.len() + pending.len()) as u64;
    let mut pending = pending.iter().peekable();
    while let Some(d) = pending.next() {
        let computed = match precomputed.as_mut().and_then(Iterator::next) {
            Some(outcome) => Ok(outcome),
            None => steps::run(&d.id, &image, ctx),
        };
        let outcome = match computed {
            Ok(o) => o,
            Err(e) => {
                if let Some(job) = job.take() {
                    let _ = job.fail(&e);
                }
                return Err(e);
            }
        };
        for op in &outcome.ops {
            if let Op::CreateCf(name) = op {
                o.storage.create_cf(name)?;
            }
        }
        let mut batch = Batch::new();
        for op in &outcome.ops {
            match op {
                Op::CreateCf(_) => {}
                Op::Put { cf, key, value } => batch.put(cf, key.as_bytes(), value.clone()),
                Op::Delete { cf, key } => batch.delete(cf, key.as_bytes()),
            }
        }
        skipped += outcome.report.invalid.len();
        let record = AppliedRecord {
            id: d.id.clone(),
            name: d.name.clone(),
            from: d.from.clone(),
            to: d.to.clone(),
            checksum: d.checksum.clone(),
            applied_at: now_ms(),
            job_id: run.job_id.clone(),
            changes: outcome.report.changes.clone(),
            repaired: outcome.report.repaired.clone(),
            skipped_invalid: outcome.report.invalid.clone(),
            leftovers: outcome.report.leftovers.clone(),
        };
        journal::put(
            &mut batch,
            &format!("{}{}", journal::APPLIED_PREFIX, d.id),
            &record,
        )?;
        run.steps_done.push(d.id.clone());
        let last = pending.peek().is_none();
        if last {
            batch.delete(kalamdb_store::DEFAULT_CF, journal::RUN_KEY.as_bytes());
            let result = json!({
                "steps": run.steps_done,
                "skipped_invalid": skipped,
                "duration_ms": started.elapsed().as_millis() as u64,
            });
            if let Some(job) = job.take() {
                job.complete_in(&mut batch, result)?;
            }
            o.storage.write(batch)?;
        } else {
            journal::put(&mut batch, journal::RUN_KEY, &run)?;
            o.storage.write(batch)?;
            if let Some(job) = job.as_mut() {
                job.progress_now(JobProgress {
                    fraction: run.steps_done.len() as f64 / total as f64,
                    items_done: run.steps_done.len() as u64,
                    items_total: total,
                    bytes_done: 0,
                    ..JobProgress::default()
                })?;
            }
        }
        if precomputed.is_none() {
            image.apply(&outcome.ops);
        }
        kalamdb_core::fail::point(&format!("migrate.step.{}", d.id));
        done.push(PlannedStep {
            step: d.into(),
            report: outcome.report,
        });
        if last {
            break;
        }
    }
    Ok((done, skipped))
}
