//! A directory opened for a migration: its database (in either layout) and the image the
//! steps read, and where it stands (current, legacy, or a run part-way).

use kalamdb_core::data_dir::{DataDir, DirLock, Layout};
use kalamdb_core::{CoreError, Result};
use kalamdb_sql::{FormatMarker, FormatState};
use kalamdb_store::{OpenMode, Storage};

use crate::checkpoint;
use crate::detect::{self, Generation, Unrecognised};
use crate::image::Image;
use crate::journal::{self, RunRecord};
use crate::layout::{self, LayoutPlan};

/// An opened directory and what the migration reads from it.
pub(crate) struct Opened {
    pub(crate) dir: DataDir,
    pub(crate) storage: Storage,
    pub(crate) image: Image,
    pub(crate) lock: Option<DirLock>,
    /// In the original engine's layout (opened read-only at its top).
    pub(crate) original: bool,
}

/// Where a directory stands.
pub(crate) enum Standing {
    Current(kalamdb_sql::FormatMarker),
    Legacy {
        origin: Generation,
        run: Option<RunRecord>,
    },
}

pub(crate) fn open(root: &std::path::Path, who: Option<&str>) -> Result<Opened> {
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

pub(crate) fn not_migrated(dir: &DataDir) -> CoreError {
    let path = dir.root().display();
    CoreError::Conflict(format!(
        "{path} is not migrated yet; run `kalamctl migrate apply --data-dir {path}` first"
    ))
}

impl Opened {
    pub(crate) fn path(&self) -> String {
        self.dir.root().display().to_string()
    }

    /// The conversion of the original layout, if the directory is in it.
    pub(crate) fn layout(&self) -> Result<Option<LayoutPlan>> {
        if !self.original {
            return Ok(None);
        }
        layout::plan(&self.dir, &layout::location_dirs(&self.image)).map(Some)
    }

    pub(crate) fn standing(&self) -> Result<Standing> {
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
    pub(crate) fn interrupted(&self) -> Result<Option<Standing>> {
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
