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

mod apply;
mod checkpoint;
mod cleanup;
pub mod descriptors;
mod detect;
mod image;
mod infer;
mod journal;
mod layout;
mod opened;
mod planning;
mod status;
mod steps;
mod upgrade_check;

pub use descriptors::Descriptor;
pub use detect::Generation;
pub use image::Invalid;
pub use journal::AppliedRecord;
pub use layout::LayoutPlan;
pub use steps::{Leftovers, StepReport};
pub use upgrade_check::{Check, UpgradeCheck, upgrade_check};

pub use apply::{ApplyOptions, ApplyReport, apply};
pub use cleanup::{Cleanup, finalize, finalize_inside, rollback};
pub use planning::{Plan, PlannedStep, StepRef, plan};
pub use status::{AppliedStatus, Status, status};
