//! `kalamctl migrate status`: where a directory stands and what to run next.

use kalamdb_core::Result;
use serde::Serialize;

use crate::checkpoint;
use crate::descriptors;
use crate::detect::Generation;
use crate::image::G1_COLUMN_FAMILIES;
use crate::journal;
use crate::layout::LayoutPlan;
use crate::opened::{Opened, Standing, open};
use crate::planning::{StepRef, pending};

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

pub(crate) fn has_g1_leftovers(o: &Opened) -> bool {
    G1_COLUMN_FAMILIES
        .iter()
        .any(|(cf, _)| o.image.all_cfs.contains(*cf))
        || o.dir.rocksdb().join("conf").exists()
        || checkpoint::has_original(&o.dir)
}
