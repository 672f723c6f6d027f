//! What a migration would do: the pending steps, computed on a copy of the image, and the
//! hash of everything it reads (`kalamctl migrate plan`).

use kalamdb_core::Result;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::descriptors::{self, Descriptor};
use crate::detect::Generation;
use crate::image::Image;
use crate::journal::RunRecord;
use crate::layout::{self, LayoutPlan};
use crate::opened::{Opened, Standing, open};
use crate::steps::{self, Ctx, StepReport};

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
    /// The top-level folders the locations' relative paths point into (what `--to` copies
    /// beside the database), read with the rest of the image.
    #[serde(skip)]
    pub(crate) location_dirs: std::collections::BTreeSet<String>,
}

/// The descriptors still to apply for `origin`, given a run's progress.
pub(crate) fn pending(origin: Generation, run: Option<&RunRecord>) -> Result<Vec<Descriptor>> {
    let chain = steps::chain(origin);
    Ok(descriptors::all()?
        .into_iter()
        .filter(|d| chain.contains(&d.id.as_str()))
        .filter(|d| run.is_none_or(|r| !r.steps_done.contains(&d.id)))
        .collect())
}

/// Runs the steps on a copy of the image: what `apply` would do.
pub(crate) fn simulate(
    image: &Image,
    ctx: &Ctx<'_>,
    pending: &[Descriptor],
) -> Result<Vec<steps::Outcome>> {
    let mut image = image.clone();
    let mut outcomes = Vec::new();
    for d in pending {
        let outcome = steps::run(&d.id, &image, ctx)?;
        image.apply(&outcome.ops);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

pub(crate) fn planned(pending: &[Descriptor], outcomes: Vec<steps::Outcome>) -> Vec<PlannedStep> {
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
pub(crate) fn plan_hash(image: &Image, origin: Generation, pending: &[Descriptor]) -> String {
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

pub(crate) fn ctx<'a>(
    o: &'a Opened,
    origin: Generation,
    now: i64,
    job_id: Option<&'a str>,
) -> Ctx<'a> {
    Ctx {
        origin,
        now,
        job_id,
        dir: &o.dir,
    }
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
                location_dirs: layout::location_dirs(&o.image),
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
        location_dirs: layout::location_dirs(&o.image),
    })
}
