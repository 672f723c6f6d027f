//! Where a table's Parquet files live.
//!
//! A table's `storage_location` is either the name of a row in `system.storage_locations` or
//! a path template. Templates may use `${namespace}`, `${table_name}` and `${user_id}`;
//! relative paths are under the data directory.
//!
//! - A named location's path is a base: unless it already names the table, the files go to
//!   `{path}/{namespace}/{table}`, and for user tables `.../{user_id}` unless the path already
//!   has `${user_id}`.
//! - A path template given directly is the table's directory. For user tables it must contain
//!   `${user_id}` as a whole path segment; for shared tables it must not contain it.

use std::path::{Path, PathBuf};

use kalamdb_store::TableKind;

use crate::data_dir::DataDir;
use crate::{CoreError, Result};

pub const USER_ID_VAR: &str = "${user_id}";
const NAMESPACE_VAR: &str = "${namespace}";
const TABLE_VAR: &str = "${table_name}";

/// A table's resolved storage template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageTemplate {
    template: String,
    /// The leading path segments that hold no variable: the location's base, which the
    /// cold-tier manifest's paths are relative to.
    base: String,
}

impl StorageTemplate {
    /// From a named location's path.
    pub fn for_location(
        location_path: &str,
        kind: TableKind,
        namespace: &str,
        table: &str,
    ) -> Self {
        let mut t = location_path.trim_end_matches('/').to_string();
        if !t.contains(NAMESPACE_VAR) && !t.contains(TABLE_VAR) {
            t.push_str("/${namespace}/${table_name}");
        }
        if kind == TableKind::User && !t.contains(USER_ID_VAR) {
            t.push_str("/${user_id}");
        }
        Self::substitute(t, namespace, table)
    }

    /// From a path template given directly in `STORAGE = '...'`.
    pub fn for_path(template: &str, kind: TableKind, namespace: &str, table: &str) -> Result<Self> {
        validate_template(template, kind)?;
        Ok(Self::substitute(
            template.trim_end_matches('/').to_string(),
            namespace,
            table,
        ))
    }

    fn substitute(t: String, namespace: &str, table: &str) -> Self {
        let base = fixed_prefix(&t);
        StorageTemplate {
            template: t
                .replace(NAMESPACE_VAR, namespace)
                .replace(TABLE_VAR, table),
            base,
        }
    }

    /// The base directory that manifest paths are relative to.
    pub fn base_dir(&self, data_dir: &DataDir) -> PathBuf {
        data_dir.resolve(&self.base)
    }

    /// A batch file's path relative to the base, as the manifest records it; `None` if the
    /// file is not under the base.
    pub fn relative(&self, data_dir: &DataDir, file: &Path) -> Option<String> {
        let rel = file.strip_prefix(self.base_dir(data_dir)).ok()?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        Some(parts?.join("/"))
    }

    /// The file a manifest path names. A path that would leave the base (`..`, absolute) is
    /// refused: a damaged record must not point anywhere else.
    pub fn locate(&self, data_dir: &DataDir, relative: &str) -> Result<PathBuf> {
        let escapes = relative.starts_with('/')
            || relative.is_empty()
            || relative.split('/').any(|seg| seg == ".." || seg.is_empty());
        if escapes {
            return Err(CoreError::Parquet {
                path: relative.to_string(),
                reason: "the cold-tier manifest records a path outside its storage location"
                    .to_string(),
            });
        }
        Ok(self.base_dir(data_dir).join(relative))
    }

    /// The directory of one user's files (user tables) or of the table's files (shared).
    pub fn dir(&self, data_dir: &DataDir, user_id: Option<&str>) -> PathBuf {
        let resolved = match user_id {
            Some(u) => self.template.replace(USER_ID_VAR, u),
            None => self.template.clone(),
        };
        data_dir.resolve(&resolved)
    }

    /// For user tables: every `(user_id, directory)` that exists on disk. For shared tables:
    /// the table's directory, if it exists, with an empty user id.
    pub fn existing_dirs(&self, data_dir: &DataDir) -> Result<Vec<(String, PathBuf)>> {
        let Some((before, after)) = self.template.split_once(USER_ID_VAR) else {
            let dir = self.dir(data_dir, None);
            return Ok(if dir.is_dir() {
                vec![(String::new(), dir)]
            } else {
                Vec::new()
            });
        };
        let parent = data_dir.resolve(before.trim_end_matches('/'));
        let suffix = after.trim_start_matches('/');
        let entries = match std::fs::read_dir(&parent) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CoreError::io(&parent, e)),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CoreError::io(&parent, e))?;
            if !entry.path().is_dir() {
                continue;
            }
            let user = entry.file_name().to_string_lossy().into_owned();
            let dir = if suffix.is_empty() {
                entry.path()
            } else {
                entry.path().join(suffix)
            };
            if dir.is_dir() {
                dirs.push((user, dir));
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    /// The deepest directory that holds nothing but this table's files: removed by a drop.
    pub fn table_root(&self, data_dir: &DataDir) -> PathBuf {
        match self.template.split_once(USER_ID_VAR) {
            Some((before, _)) => data_dir.resolve(before.trim_end_matches('/')),
            None => self.dir(data_dir, None),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }
}

/// The leading segments of a template that hold no `${...}` variable.
fn fixed_prefix(template: &str) -> String {
    let fixed: Vec<&str> = template
        .split('/')
        .take_while(|seg| !seg.contains("${"))
        .collect();
    let joined = fixed.join("/");
    if joined.is_empty() && template.starts_with('/') {
        "/".to_string()
    } else {
        joined
    }
}

fn validate_template(template: &str, kind: TableKind) -> Result<()> {
    let has_user = template.contains(USER_ID_VAR);
    if is_url(template) {
        return Err(CoreError::InvalidInput(format!(
            "STORAGE '{template}' is a URL; this build keeps Parquet files on local paths only (object storage is not supported yet); give a directory"
        )));
    }
    match kind {
        TableKind::User if !has_user => Err(CoreError::InvalidInput(format!(
            "STORAGE '{template}' for a user table must contain ${{user_id}}, e.g. '/data/${{user_id}}/t'"
        ))),
        TableKind::User if !template.split('/').any(|seg| seg == USER_ID_VAR) => {
            Err(CoreError::InvalidInput(format!(
                "STORAGE '{template}': ${{user_id}} must be a whole path segment, e.g. '/data/${{user_id}}/t'"
            )))
        }
        TableKind::Shared | TableKind::Stream if has_user => Err(CoreError::InvalidInput(format!(
            "STORAGE '{template}': only user tables may use ${{user_id}}"
        ))),
        _ if template.split('/').any(|seg| seg == "..") => Err(CoreError::InvalidInput(format!(
            "STORAGE '{template}' may not contain '..'"
        ))),
        _ => Ok(()),
    }
}

/// Whether a location path is a URL (`s3://...`): object storage, not a local path.
pub fn is_url(path: &str) -> bool {
    path.contains("://")
}

/// Whether a file name is a Parquet batch this engine writes or reads (`batch-*.parquet`).
pub fn is_batch_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("batch-") && n.ends_with(".parquet"))
}

/// The batch files in a directory, oldest first (their names sort by creation time).
pub fn batch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CoreError::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_batch_file(p))
        .collect();
    files.sort_by_key(|p| batch_sort_key(p));
    Ok(files)
}

/// `batch-{ms}.parquet` and `batch-{ms}-{n}.parquet` sort by `(ms, n)`.
fn batch_sort_key(path: &Path) -> (i64, u64) {
    kalamdb_sql::batch_order(
        path.file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_get_namespace_table_and_user_segments() {
        let dd = DataDir::new("/d");
        let t = StorageTemplate::for_location("storage", TableKind::User, "app", "notes");
        assert_eq!(
            t.dir(&dd, Some("u1")),
            PathBuf::from("/d/storage/app/notes/u1")
        );
        assert_eq!(t.table_root(&dd), PathBuf::from("/d/storage/app/notes"));
        let file = PathBuf::from("/d/storage/app/notes/u1/batch-1.parquet");
        let rel = t.relative(&dd, &file).expect("under the base");
        assert_eq!(rel, "app/notes/u1/batch-1.parquet");
        assert_eq!(t.locate(&dd, &rel).expect("inside"), file);
        assert!(t.locate(&dd, "../x/batch-1.parquet").is_err());
        assert!(t.locate(&dd, "/etc/batch-1.parquet").is_err());
        let s = StorageTemplate::for_location("/mnt/x", TableKind::Shared, "app", "cfg");
        assert_eq!(s.dir(&dd, None), PathBuf::from("/mnt/x/app/cfg"));
    }

    #[test]
    fn direct_templates_are_validated() {
        assert!(StorageTemplate::for_path("/data/t", TableKind::User, "a", "t").is_err());
        assert!(
            StorageTemplate::for_path("/data/u${user_id}/t", TableKind::User, "a", "t").is_err()
        );
        assert!(
            StorageTemplate::for_path("/data/${user_id}", TableKind::Shared, "a", "t").is_err()
        );
        let ok =
            StorageTemplate::for_path("/data/${namespace}/${user_id}/t", TableKind::User, "a", "t")
                .expect("ok");
        assert_eq!(
            ok.dir(&DataDir::new("/d"), Some("bob")),
            PathBuf::from("/data/a/bob/t")
        );
        assert_eq!(ok.base_dir(&DataDir::new("/d")), PathBuf::from("/data"));
    }

    #[test]
    fn batch_files_sort_by_time_then_sequence() {
        let mut v = [
            PathBuf::from("batch-20.parquet"),
            PathBuf::from("batch-3-1.parquet"),
            PathBuf::from("batch-3.parquet"),
        ];
        v.sort_by_key(|p| batch_sort_key(p));
        assert_eq!(v[0], PathBuf::from("batch-3.parquet"));
        assert_eq!(v[2], PathBuf::from("batch-20.parquet"));
    }
}
