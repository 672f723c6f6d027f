//! Migration of legacy data directories (G1, G2 and the original engine's G3, described in
//! `specs/legacy-layouts.md`) to the current format, offline.
//!
//! - [`status`] and [`plan`] only read. A plan lists every change per step and entity and
//!   ends in a hash of everything the migration reads; `apply --plan HASH` refuses if it
//!   changed.
//! - [`apply`] takes a RocksDB checkpoint before it writes anything, then applies the steps
//!   of `migrations/` one write batch each. A batch holds the step's writes, its history
//!   record and the journal's progress, so a run killed at any point resumes at the next
//!   step, and ends exactly as an uninterrupted run: steps are pure functions of what they
//!   read ([`steps`]). Row data is never rewritten.
//! - [`rollback`] swaps the checkpoint back in; [`finalize`] deletes it and what the old
//!   engine left behind.
//! - A directory in the original engine's layout (the RocksDB directory itself, as the
//!   operator has it) is taken as given: `apply` nests it first ([`layout`]), or copies it
//!   into a new data directory with `--to`.

mod checkpoint;
pub mod descriptors;
mod detect;
mod image;
mod infer;
mod journal;
mod layout;
mod steps;
mod upgrade_check;

use std::time::Instant;

use kalamdb_sql::{FormatMarker, FormatState, JobProgress, JobRecord, SystemRecord as _};
use kalamdb_store::{Batch, OpenMode, Storage, now_ms};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

pub use descriptors::Descriptor;
pub use detect::Generation;
pub use image::Invalid;
pub use journal::AppliedRecord;
pub use layout::LayoutPlan;
pub use steps::{Leftovers, StepReport};
pub use upgrade_check::{Check, UpgradeCheck, upgrade_check};

use detect::Unrecognised;
use image::{G1_COLUMN_FAMILIES, Image, Op};
use journal::{FinalizedRecord, RunRecord};
use kalamdb_core::data_dir::{DataDir, DirLock, Layout};
use kalamdb_core::jobs::{self, Job, Observer, job_type};
use kalamdb_core::{CoreError, Engine, Result};
use steps::Ctx;

/// A step as `status` and `plan` show it.
#[derive(Debug, Clone, Serialize)]
pub struct StepRef {
    pub id: String,
    pub name: String,
    pub from: String,
    pub to: String,
    pub checksum: String,
}

impl From<&Descriptor> for StepRef {
    fn from(d: &Descriptor) -> Self {
        StepRef {
            id: d.id.clone(),
            name: d.name.clone(),
            from: d.from.clone(),
            to: d.to.clone(),
            checksum: d.checksum.clone(),
        }
    }
}

/// An applied step as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedStatus {
    pub id: String,
    pub name: String,
    pub checksum: String,
    pub applied_at: i64,
    /// `None` when this build's descriptor has the recorded checksum; otherwise what differs.
    pub drift: Option<String>,
}

/// `kalamctl migrate status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub data_dir: String,
    /// `current`, `pending` (legacy, not started) or `interrupted` (a run stopped part-way).
    pub state: &'static str,
    /// The generation the directory holds, or was migrated from.
    pub generation: Option<Generation>,
    pub format_version: Option<u32>,
    pub written_by: Option<String>,
    pub applied: Vec<AppliedStatus>,
    /// In the original engine's layout: the conversion `apply` does first.
    pub layout: Option<LayoutPlan>,
    pub pending: Vec<StepRef>,
    /// What `rollback` returns to (the pre-migration checkpoint, or the original files),
    /// while it can.
    pub checkpoint: Option<String>,
    pub finalized_at: Option<i64>,
    /// What to run next.
    pub next: String,
}

/// One step of a plan, or of an applied run.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    #[serde(flatten)]
    pub step: StepRef,
    #[serde(flatten)]
    pub report: StepReport,
}

/// `kalamctl migrate plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub data_dir: String,
    pub generation: Option<Generation>,
    /// In the original engine's layout: the conversion `apply` does first.
    pub layout: Option<LayoutPlan>,
    pub steps: Vec<PlannedStep>,
    /// Records no step can convert; `apply` refuses unless `--skip-invalid`.
    pub invalid: usize,
    /// Give it to `apply --plan` to refuse if the directory changes meanwhile.
    pub hash: String,
}

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

/// `kalamctl migrate rollback` and `finalize`.
#[derive(Debug, Clone, Serialize)]
pub struct Cleanup {
    pub data_dir: String,
    /// `rolled_back`, `finalized` or `nothing_to_do`.
    pub state: &'static str,
    pub removed: Vec<String>,
}

/// An opened directory and what the migration reads from it.
struct Opened {
    dir: DataDir,
    storage: Storage,
    image: Image,
    lock: Option<DirLock>,
    /// In the original engine's layout (opened read-only at its top).
    original: bool,
}

/// Where a directory stands.
enum Standing {
    Current(kalamdb_sql::FormatMarker),
    Legacy {
        origin: Generation,
        run: Option<RunRecord>,
    },
}

fn open(root: &std::path::Path, who: Option<&str>) -> Result<Opened> {
    let dir = DataDir::new(root);
    if checkpoint::rollback_state(&dir) == checkpoint::RollbackState::Interrupted {
        return Err(CoreError::Conflict(format!(
            "a rollback of {} was interrupted; run `kalamctl migrate rollback --data-dir {}` to finish it",
            dir.root().display(),
            dir.root().display()
        )));
    }
    dir.check_holds_database()?;
    let original = dir.layout() == Layout::Original;
    if original && who.is_some() {
        // The original files are never opened for writing: `apply` nests them first.
        return Err(not_migrated(&dir));
    }
    let lock = who.map(|w| DirLock::acquire(&dir, w)).transpose()?;
    let mode = if lock.is_some() {
        OpenMode::ReadWrite
    } else {
        OpenMode::ReadOnly
    };
    let db = dir.database();
    let mut storage = Storage::open(&db, mode)?;
    storage.set_sync_writes(true);
    let image = Image::load(&storage, &db)?;
    Ok(Opened {
        dir,
        storage,
        image,
        lock,
        original,
    })
}

fn not_migrated(dir: &DataDir) -> CoreError {
    let path = dir.root().display();
    CoreError::Conflict(format!(
        "{path} is not migrated yet; run `kalamctl migrate apply --data-dir {path}` first"
    ))
}

impl Opened {
    fn path(&self) -> String {
        self.dir.root().display().to_string()
    }

    /// The conversion of the original layout, if the directory is in it.
    fn layout(&self) -> Result<Option<LayoutPlan>> {
        if !self.original {
            return Ok(None);
        }
        layout::plan(&self.dir, &layout::location_dirs(&self.image)).map(Some)
    }

    fn standing(&self) -> Result<Standing> {
        let path = self.path();
        match FormatMarker::state(&self.storage)? {
            FormatState::Current(m) => Ok(Standing::Current(m)),
            FormatState::Newer(m) => Err(CoreError::newer_format(path, m)),
            // Format 1, or a run from a legacy generation that is under way (its step 0003
            // writes the format-1 marker).
            FormatState::Older(m) if m.format_version == 1 => match self.interrupted()? {
                Some(standing) => Ok(standing),
                None => Ok(Standing::Legacy {
                    origin: Generation::Format1,
                    run: None,
                }),
            },
            FormatState::Older(m) => Err(CoreError::UnrecognisedLayout {
                path,
                reason: format!("format {} has no migration in this build", m.format_version),
            }),
            FormatState::Unreadable(reason) => Err(CoreError::UnreadableFormat { path, reason }),
            FormatState::Unmarked => {
                if let Some(standing) = self.interrupted()? {
                    return Ok(standing);
                }
                match detect::detect(&self.image) {
                    Ok(origin) => Ok(Standing::Legacy { origin, run: None }),
                    Err(Unrecognised::Mixed(evidence)) => Err(CoreError::MixedGenerations {
                        path,
                        evidence: evidence.join("; "),
                    }),
                    Err(Unrecognised::Unknown(reason)) => {
                        Err(CoreError::UnrecognisedLayout { path, reason })
                    }
                }
            }
        }
    }

    /// The unfinished run the journal records, if any.
    fn interrupted(&self) -> Result<Option<Standing>> {
        let Some(run) = journal::run(&self.image) else {
            return Ok(None);
        };
        let origin =
            Generation::parse(&run.origin).ok_or_else(|| CoreError::UnrecognisedLayout {
                path: self.path(),
                reason: format!("the migration journal names generation {}", run.origin),
            })?;
        Ok(Some(Standing::Legacy {
            origin,
            run: Some(run),
        }))
    }
}

/// The descriptors still to apply for `origin`, given a run's progress.
fn pending(origin: Generation, run: Option<&RunRecord>) -> Result<Vec<Descriptor>> {
    let chain = steps::chain(origin);
    Ok(descriptors::all()?
        .into_iter()
        .filter(|d| chain.contains(&d.id.as_str()))
        .filter(|d| run.is_none_or(|r| !r.steps_done.contains(&d.id)))
        .collect())
}

/// Runs the steps on a copy of the image: what `apply` would do.
fn simulate(image: &Image, ctx: &Ctx<'_>, pending: &[Descriptor]) -> Result<Vec<steps::Outcome>> {
    let mut image = image.clone();
    let mut outcomes = Vec::new();
    for d in pending {
        let outcome = steps::run(&d.id, &image, ctx)?;
        image.apply(&outcome.ops);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn planned(pending: &[Descriptor], outcomes: Vec<steps::Outcome>) -> Vec<PlannedStep> {
    pending
        .iter()
        .zip(outcomes)
        .map(|(d, o)| PlannedStep {
            step: d.into(),
            report: o.report,
        })
        .collect()
}

/// A hash of everything the migration reads, and of the steps it would run.
fn plan_hash(image: &Image, origin: Generation, pending: &[Descriptor]) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(origin.as_str().as_bytes());
    for d in pending {
        field(d.id.as_bytes());
        field(d.checksum.as_bytes());
    }
    for (cf, records) in image.catalog.iter().filter(|(_, r)| !r.is_empty()) {
        field(cf.as_bytes());
        for (k, v) in records {
            field(k.as_bytes());
            field(v);
        }
    }
    for (path, bytes) in image.conf.iter().flatten() {
        field(path.as_bytes());
        field(bytes);
    }
    for (name, d) in &image.data {
        field(name.as_bytes());
        field(format!("{}{:?}", d.empty, d.inferred).as_bytes());
    }
    let digest = h.finalize();
    kalamdb_core::checksum::hex(digest.get(..8).unwrap_or_default())
}

fn ctx<'a>(o: &'a Opened, origin: Generation, now: i64, job_id: Option<&'a str>) -> Ctx<'a> {
    Ctx {
        origin,
        now,
        job_id,
        dir: &o.dir,
    }
}

/// `kalamctl migrate status`: read-only.
pub fn status(root: &std::path::Path) -> Result<Status> {
    let o = open(root, None)?;
    let applied = journal::applied(&o.image);
    let known = descriptors::all()?;
    let applied_status: Vec<AppliedStatus> = applied
        .iter()
        .map(|a| AppliedStatus {
            id: a.id.clone(),
            name: a.name.clone(),
            checksum: a.checksum.clone(),
            applied_at: a.applied_at,
            drift: match known.iter().find(|d| d.id == a.id) {
                None => Some("this build has no descriptor with this id".into()),
                Some(d) if d.checksum != a.checksum => Some(format!(
                    "the descriptor changed since it was applied: this build has {}",
                    d.checksum
                )),
                Some(_) => None,
            },
        })
        .collect();
    let checkpoint = checkpoint::rollback_target(&o.dir);
    let layout = o.layout()?;
    let finalized_at = journal::finalized(&o.image).map(|f| f.at);
    let path = o.path();
    let (state, generation, marker, pending_steps, next) = match o.standing()? {
        Standing::Current(m) => {
            let next = if checkpoint.is_some() || has_g1_leftovers(&o) {
                format!(
                    "run `kalamctl migrate finalize --data-dir {path}` once kalamd runs well on it (until then `rollback` restores the original)"
                )
            } else {
                "nothing: the directory is current".to_string()
            };
            let origin = applied.first().and_then(|a| Generation::parse(&a.from));
            ("current", origin, Some(m), Vec::new(), next)
        }
        Standing::Legacy { origin, run } => {
            let pending = pending(origin, run.as_ref())?;
            let (state, next) = match &run {
                Some(r) => (
                    "interrupted",
                    format!(
                        "a run stopped after {} of {} step(s); run `kalamctl migrate apply --data-dir {path}` to finish it, or `kalamctl migrate rollback --data-dir {path}`",
                        r.steps_done.len(),
                        r.steps_done.len() + pending.len()
                    ),
                ),
                None => (
                    "pending",
                    match layout.as_ref().and_then(|l| l.blocked.as_ref()) {
                        Some(why) => format!(
                            "review `kalamctl migrate plan --data-dir {path}`; {path} cannot be migrated in place ({why}), so run `kalamctl migrate apply --data-dir {path} --to NEW_DIR`"
                        ),
                        None => format!(
                            "review `kalamctl migrate plan --data-dir {path}`, then run `kalamctl migrate apply --data-dir {path}`"
                        ),
                    },
                ),
            };
            (
                state,
                Some(origin),
                None,
                pending.iter().map(StepRef::from).collect(),
                next,
            )
        }
    };
    Ok(Status {
        data_dir: path,
        state,
        generation,
        format_version: marker.as_ref().map(|m| m.format_version),
        written_by: marker.map(|m| m.written_by),
        applied: applied_status,
        layout,
        pending: pending_steps,
        checkpoint,
        finalized_at,
        next,
    })
}

fn has_g1_leftovers(o: &Opened) -> bool {
    G1_COLUMN_FAMILIES
        .iter()
        .any(|(cf, _)| o.image.all_cfs.contains(*cf))
        || o.dir.rocksdb().join("conf").exists()
        || checkpoint::has_original(&o.dir)
}

/// `kalamctl migrate plan`: read-only.
pub fn plan(root: &std::path::Path) -> Result<Plan> {
    let mut o = open(root, None)?;
    let path = o.path();
    let (origin, run) = match o.standing()? {
        Standing::Current(_) => {
            return Ok(Plan {
                data_dir: path,
                generation: None,
                layout: None,
                steps: Vec::new(),
                invalid: 0,
                hash: plan_hash(&o.image, Generation::G3, &[]),
            });
        }
        Standing::Legacy { origin, run } => (origin, run),
    };
    if matches!(origin, Generation::G2 | Generation::G3) {
        o.image.infer_tables(&o.storage)?;
    }
    let pending = pending(origin, run.as_ref())?;
    let now = run
        .as_ref()
        .map_or_else(|| steps::directory_time(&o.image), |r| r.now);
    let job_id = run.as_ref().map(|r| r.job_id.clone());
    let outcomes = simulate(&o.image, &ctx(&o, origin, now, job_id.as_deref()), &pending)?;
    let steps = planned(&pending, outcomes);
    Ok(Plan {
        data_dir: path,
        generation: Some(origin),
        layout: o.layout()?,
        invalid: steps.iter().map(|s| s.report.invalid.len()).sum(),
        hash: run
            .map(|r| r.plan_hash)
            .unwrap_or_else(|| plan_hash(&o.image, origin, &pending)),
        steps,
    })
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
        return apply_to(root, &to, decided.hash, opts);
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
fn nest_in_place(root: &std::path::Path, plan: &LayoutPlan) -> Result<()> {
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
fn apply_to(
    root: &std::path::Path,
    to: &std::path::Path,
    hash: String,
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
            let dirs = layout::location_dirs(&open(root, None)?.image);
            layout::copy_to(&src, &dst, &dirs)?;
            Some(hash)
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
fn job_record(engine: &Engine, run: &RunRecord, total: u64) -> Result<JobRecord> {
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
fn run_steps(
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

/// `kalamctl migrate rollback`: the checkpoint replaces `D/rocksdb`.
pub fn rollback(root: &std::path::Path) -> Result<Cleanup> {
    let dir = DataDir::new(root);
    let path = dir.root().display().to_string();
    if !dir.root().is_dir() {
        dir.check_holds_database()?;
    }
    // Refused before the lock: nothing, not even the lock file, is written to a directory
    // with nothing to roll back (an original layout stays exactly as it is).
    let nothing = |dir: &DataDir| match dir.check_holds_database() {
        Err(e) => e,
        Ok(()) => CoreError::NotFound(format!(
            "{path} has no migration checkpoint to roll back to (never migrated here, or finalized)"
        )),
    };
    if checkpoint::rollback_state(&dir) == checkpoint::RollbackState::Nothing {
        return Err(nothing(&dir));
    }
    let _lock = DirLock::acquire(&dir, "kalamctl migrate rollback")?;
    if checkpoint::rollback_state(&dir) == checkpoint::RollbackState::Nothing {
        return Err(nothing(&dir));
    }
    let original = checkpoint::has_original(&dir);
    checkpoint::roll_back(&dir)?;
    Ok(Cleanup {
        data_dir: path,
        state: "rolled_back",
        removed: vec![if original {
            format!(
                "{} (the migrated database; the original engine's files at the top are as they were)",
                dir.rocksdb().display()
            )
        } else {
            format!(
                "{} (the migrated database; the checkpoint took its place)",
                dir.rocksdb().display()
            )
        }],
    })
}

/// `kalamctl migrate finalize`: deletes the checkpoint and what the old engine left.
pub fn finalize(root: &std::path::Path) -> Result<Cleanup> {
    finalize_with(root, false)
}

/// [`finalize`], leaving files outside the data directory alone: for a copy (a scratch or a
/// restore) whose leftovers may name the original's files.
pub fn finalize_inside(root: &std::path::Path) -> Result<Cleanup> {
    finalize_with(root, true)
}

/// Like [`finalize`]; with `inside_only`, files outside the data directory are left alone
/// (a scratch copy's leftovers may name the original's files).
fn finalize_with(root: &std::path::Path, inside_only: bool) -> Result<Cleanup> {
    let o = open(root, Some("kalamctl migrate finalize"))?;
    let path = o.path();
    match o.standing()? {
        Standing::Current(_) => {}
        Standing::Legacy { .. } => return Err(not_migrated(&o.dir)),
    }
    // A copy made by `--to` leaves the original's files alone.
    let inside_only = inside_only || layout::is_copy(&o.dir);
    let mut removed = Vec::new();
    if checkpoint::has_original(&o.dir)
        || o.image.kalamdb_keys.contains_key(journal::FINALIZING_KEY)
    {
        // Recorded first: a finalize killed part-way finishes the deletion when run again,
        // though the files left no longer form a database.
        let mut batch = Batch::new();
        journal::put(&mut batch, journal::FINALIZING_KEY, &true)?;
        o.storage.write(batch)?;
        let mut files = layout::original_files(&o.dir)?;
        // CURRENT first: without it what remains is no database, never taken for the original.
        files.sort_by_key(|f| f.file_name().is_none_or(|n| n != "CURRENT"));
        for (i, file) in files.into_iter().enumerate() {
            if file.is_dir() {
                checkpoint::remove_tree(&file)?;
            } else if i == 0 {
                kalamdb_core::fs::remove_file_durable(&file)?;
                kalamdb_core::fail::point("migrate.finalize.original");
            } else {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CoreError::io(&file, e)),
                }
            }
            removed.push(file.display().to_string());
        }
        checkpoint::sync_dir(o.dir.root())?;
    }
    let leftovers: Vec<Leftovers> = journal::applied(&o.image)
        .into_iter()
        .map(|a| a.leftovers)
        .collect();
    let mut drop: Vec<String> = G1_COLUMN_FAMILIES
        .iter()
        .map(|(cf, _)| cf.to_string())
        .collect();
    drop.push(image::COUNTERS_CF.to_string());
    for cf in leftovers.iter().flat_map(|l| &l.column_families) {
        // Only if it is still empty and still no table's.
        let owned = o.image.data.get(cf).is_some_and(|d| {
            o.storage
                .get(
                    kalamdb_sql::TableRecord::CF,
                    format!("table:{}:{}", d.cf.namespace, d.cf.table).as_bytes(),
                )
                .ok()
                .flatten()
                .is_some()
        });
        if !owned && o.storage.has_cf(cf) && o.storage.is_cf_empty(cf)? {
            drop.push(cf.clone());
        }
    }
    for cf in drop {
        if o.storage.has_cf(&cf) {
            o.storage.drop_cf(&cf)?;
            removed.push(format!("column family {cf}"));
        }
    }
    for file in leftovers.iter().flat_map(|l| &l.files) {
        if inside_only && !std::path::Path::new(file).starts_with(o.dir.root()) {
            continue;
        }
        match std::fs::remove_file(file) {
            Ok(()) => {
                removed.push(file.clone());
                // Then the directories the file leaves empty, up to the storage root.
                let mut parent = std::path::Path::new(file).parent();
                while let Some(p) = parent {
                    let inside = p.starts_with(o.dir.root());
                    if p == o.dir.root()
                        || p == o.dir.storage()
                        || std::fs::remove_dir(p).is_err()
                        || !inside
                    {
                        break;
                    }
                    parent = p.parent();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoreError::io(file, e)),
        }
    }
    let conf = o.dir.rocksdb().join("conf");
    if conf.exists() {
        checkpoint::remove_tree(&conf)?;
        removed.push(conf.display().to_string());
    }
    let cp = checkpoint::path(&o.dir);
    if cp.exists() {
        checkpoint::remove(&o.dir)?;
        removed.push(format!("{} (rollback is no longer possible)", cp.display()));
    }
    if removed.is_empty() {
        return Ok(Cleanup {
            data_dir: path,
            state: "nothing_to_do",
            removed,
        });
    }
    let mut batch = Batch::new();
    journal::put(
        &mut batch,
        journal::FINALIZED_KEY,
        &FinalizedRecord {
            at: now_ms(),
            removed: removed.clone(),
        },
    )?;
    batch.delete(
        kalamdb_store::DEFAULT_CF,
        journal::FINALIZING_KEY.as_bytes(),
    );
    o.storage.write(batch)?;
    Ok(Cleanup {
        data_dir: path,
        state: "finalized",
        removed,
    })
}
