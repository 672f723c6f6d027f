//! Working directories that never outlive their purpose: removed when dropped, and, when a
//! process was killed before it could remove its own, by the next run (they carry the pid).

use std::path::{Path, PathBuf};

use kalamdb_core::fs::remove_tree;
use kalamdb_core::{CoreError, Result};

/// A directory `{parent}/{prefix}-{pid}-{n}`, removed on drop unless kept.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Creates a fresh scratch directory, first removing those of dead processes.
    pub fn new(parent: &Path, prefix: &str) -> Result<Scratch> {
        remove_stale(parent, prefix)?;
        kalamdb_core::fs::create_dir_durable(parent)?;
        let pid = std::process::id();
        for n in 0.. {
            let path = parent.join(format!("{prefix}-{pid}-{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Scratch { path, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(CoreError::io(&path, e)),
            }
        }
        unreachable!("the loop returns")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory stays (it was renamed into place, or must be inspected).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_tree(&self.path);
            if let Some(parent) = self.path.parent() {
                // Only an empty parent goes; anything else in it stays.
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Removes `{prefix}-{pid}-*` directories in `parent` whose process no longer runs.
pub fn remove_stale(parent: &Path, prefix: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 != std::process::id() && !alive(pid) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
