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
use std::sync::Arc;

use kalamdb_store::TableKind;
use object_store::path::Path as Key;

use super::object::{self, Bucket};
use super::path::ColdPath;
use crate::data_dir::DataDir;
use crate::{CoreError, Result};

pub const USER_ID_VAR: &str = "${user_id}";
const NAMESPACE_VAR: &str = "${namespace}";
const TABLE_VAR: &str = "${table_name}";

/// Where a template's paths are: the local file system, or a bucket.
#[derive(Debug, Clone)]
enum Store {
    Local,
    /// A bucket, with the client to reach it once [`StorageTemplate::resolve`]d.
    Object {
        bucket: String,
        client: Option<Arc<Bucket>>,
    },
}

/// A table's resolved storage template.
#[derive(Debug, Clone)]
pub struct StorageTemplate {
    template: String,
    /// The leading path segments that hold no variable: the location's base, which the
    /// cold-tier manifest's paths are relative to.
    base: String,
    store: Store,
}

impl StorageTemplate {
    /// From a named location's path: a directory, or an `s3://bucket/prefix` URL.
    pub fn for_location(
        location_path: &str,
        kind: TableKind,
        namespace: &str,
        table: &str,
    ) -> Self {
        let (store, path) = match object::split_url(location_path) {
            Some((bucket, prefix)) => (
                Store::Object {
                    bucket: bucket.to_string(),
                    client: None,
                },
                prefix.to_string(),
            ),
            None => (Store::Local, location_path.to_string()),
        };
        let mut t = path.trim_end_matches('/').to_string();
        if !t.contains(NAMESPACE_VAR) && !t.contains(TABLE_VAR) {
            if !t.is_empty() || matches!(store, Store::Local) {
                t.push('/');
            }
            t.push_str("${namespace}/${table_name}");
        }
        if kind == TableKind::User && !t.contains(USER_ID_VAR) {
            t.push_str("/${user_id}");
        }
        Self::substitute(t, namespace, table, store)
    }

    /// From a path template given directly in `STORAGE = '...'`.
    pub fn for_path(template: &str, kind: TableKind, namespace: &str, table: &str) -> Result<Self> {
        validate_template(template, kind)?;
        Ok(Self::substitute(
            template.trim_end_matches('/').to_string(),
            namespace,
            table,
            Store::Local,
        ))
    }

    fn substitute(t: String, namespace: &str, table: &str, store: Store) -> Self {
        let base = fixed_prefix(&t);
        StorageTemplate {
            template: t
                .replace(NAMESPACE_VAR, namespace)
                .replace(TABLE_VAR, table),
            base,
            store,
        }
    }

    /// Attaches the client of an object-store template, built from `profile` (`None`: the
    /// `AWS_*` environment); `location` names the storage location for errors.
    pub fn resolve(mut self, profile: Option<&str>, location: &str) -> Result<Self> {
        if let Store::Object { bucket, client } = &mut self.store {
            *client = Some(object::bucket(
                bucket,
                profile,
                &format!("storage location '{location}'"),
            )?);
        }
        Ok(self)
    }

    /// Whether the files are on object storage.
    pub fn is_object(&self) -> bool {
        matches!(self.store, Store::Object { .. })
    }

    /// A path of the template's store: relative to the data directory (local), or a key.
    fn at(&self, data_dir: &DataDir, path: &str) -> Result<ColdPath> {
        match &self.store {
            Store::Local => Ok(ColdPath::Local(data_dir.resolve(path))),
            Store::Object {
                client: Some(b), ..
            } => Ok(ColdPath::Object(
                Arc::clone(b),
                Key::from(path.trim_matches('/')),
            )),
            Store::Object {
                bucket,
                client: None,
            } => Err(CoreError::Conflict(format!(
                "s3://{bucket}/{path} is on object storage whose credentials were not resolved"
            ))),
        }
    }

    /// The base directory that manifest paths are relative to.
    pub fn base(&self, data_dir: &DataDir) -> Result<ColdPath> {
        self.at(data_dir, &self.base)
    }

    /// The local base directory (a bucket's base is not local: `None`).
    pub fn base_dir(&self, data_dir: &DataDir) -> Option<PathBuf> {
        matches!(self.store, Store::Local).then(|| data_dir.resolve(&self.base))
    }

    /// A batch file's path relative to the base, as the manifest records it; `None` if the
    /// file is not under the base.
    pub fn relative(&self, data_dir: &DataDir, file: &ColdPath) -> Option<String> {
        match (file, self.base(data_dir).ok()?) {
            (ColdPath::Local(file), ColdPath::Local(base)) => {
                let rel = file.strip_prefix(base).ok()?;
                let parts: Option<Vec<&str>> =
                    rel.components().map(|c| c.as_os_str().to_str()).collect();
                Some(parts?.join("/"))
            }
            (ColdPath::Object(b, key), ColdPath::Object(bb, base)) if b.name() == bb.name() => {
                let parts: Vec<String> = key
                    .prefix_match(&base)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                Some(parts.join("/"))
            }
            _ => None,
        }
    }

    /// The file a manifest path names. A path that would leave the base (`..`, absolute) is
    /// refused: a damaged record must not point anywhere else.
    pub fn locate(&self, data_dir: &DataDir, relative: &str) -> Result<ColdPath> {
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
        match self.base(data_dir)? {
            ColdPath::Local(base) => Ok(ColdPath::Local(base.join(relative))),
            ColdPath::Object(b, base) => {
                // The manifest records keys as listed (already encoded): parsed, not re-encoded.
                let key = if base.as_ref().is_empty() {
                    Key::parse(relative)
                } else {
                    Key::parse(format!("{base}/{relative}"))
                };
                let key = key.map_err(|e| CoreError::Parquet {
                    path: relative.to_string(),
                    reason: format!("the cold-tier manifest records an invalid object key: {e}"),
                })?;
                Ok(ColdPath::Object(b, key))
            }
        }
    }

    /// The directory of one user's files (user tables) or of the table's files (shared).
    pub fn dir(&self, data_dir: &DataDir, user_id: Option<&str>) -> Result<ColdPath> {
        let resolved = match user_id {
            Some(u) => self.template.replace(USER_ID_VAR, u),
            None => self.template.clone(),
        };
        self.at(data_dir, &resolved)
    }

    /// For user tables: every `(user_id, directory)` that exists. For shared tables: the
    /// table's directory, if it exists, with an empty user id.
    pub fn existing_dirs(&self, data_dir: &DataDir) -> Result<Vec<(String, ColdPath)>> {
        let Some((before, after)) = self.template.split_once(USER_ID_VAR) else {
            let dir = self.dir(data_dir, None)?;
            return Ok(if dir.is_dir()? {
                vec![(String::new(), dir)]
            } else {
                Vec::new()
            });
        };
        let parent = self.at(data_dir, before.trim_end_matches('/'))?;
        let suffix = after.trim_matches('/');
        let mut dirs = Vec::new();
        for (user, entry) in parent.subdirs()? {
            let dir = if suffix.is_empty() {
                entry
            } else {
                suffix.split('/').fold(entry, |d, seg| d.join(seg))
            };
            if dir.is_dir()? {
                dirs.push((user, dir));
            }
        }
        Ok(dirs)
    }

    /// The deepest directory that holds nothing but this table's files: removed by a drop.
    pub fn table_root(&self, data_dir: &DataDir) -> Result<ColdPath> {
        match self.template.split_once(USER_ID_VAR) {
            Some((before, _)) => self.at(data_dir, before.trim_end_matches('/')),
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
            "STORAGE '{template}' is a URL; create a storage location for it (CREATE STORAGE name TYPE s3 PATH '{template}') and use STORAGE = 'name'"
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
        .is_some_and(is_batch_name)
}

/// The batch files in a directory, oldest first (their names sort by creation time).
pub fn batch_files(dir: &ColdPath) -> Result<Vec<ColdPath>> {
    let mut files: Vec<ColdPath> = dir
        .files()?
        .into_iter()
        .map(|(f, _)| f)
        .filter(|f| f.file_name().is_some_and(is_batch_name))
        .collect();
    files.sort_by_key(|f| batch_sort_key(f.file_name().unwrap_or_default()));
    Ok(files)
}

fn is_batch_name(n: &str) -> bool {
    n.starts_with("batch-") && n.ends_with(".parquet")
}

/// `batch-{ms}.parquet` and `batch-{ms}-{n}.parquet` sort by `(ms, n)`.
fn batch_sort_key(name: &str) -> (i64, u64) {
    kalamdb_sql::batch_order(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(p: &str) -> ColdPath {
        ColdPath::Local(PathBuf::from(p))
    }

    #[test]
    fn locations_get_namespace_table_and_user_segments() {
        let dd = DataDir::new("/d");
        let t = StorageTemplate::for_location("storage", TableKind::User, "app", "notes");
        assert_eq!(
            t.dir(&dd, Some("u1")).expect("dir"),
            local("/d/storage/app/notes/u1")
        );
        assert_eq!(
            t.table_root(&dd).expect("root"),
            local("/d/storage/app/notes")
        );
        let file = local("/d/storage/app/notes/u1/batch-1.parquet");
        let rel = t.relative(&dd, &file).expect("under the base");
        assert_eq!(rel, "app/notes/u1/batch-1.parquet");
        assert_eq!(t.locate(&dd, &rel).expect("inside"), file);
        assert!(t.locate(&dd, "../x/batch-1.parquet").is_err());
        assert!(t.locate(&dd, "/etc/batch-1.parquet").is_err());
        let s = StorageTemplate::for_location("/mnt/x", TableKind::Shared, "app", "cfg");
        assert_eq!(s.dir(&dd, None).expect("dir"), local("/mnt/x/app/cfg"));
    }

    #[test]
    fn an_s3_location_is_a_key_prefix_in_its_bucket_never_a_local_path() {
        let dd = DataDir::new("/d");
        let t = StorageTemplate::for_location("s3://lake/v1/", TableKind::User, "app", "notes");
        assert!(t.is_object());
        assert_eq!(t.as_str(), "v1/app/notes/${user_id}");
        assert_eq!(t.base_dir(&dd), None, "no local base");
        // Unresolved (no client yet): every path is refused, none is made locally.
        let e = t.dir(&dd, Some("u1")).expect_err("unresolved");
        assert!(e.to_string().contains("s3://lake/v1/app/notes/u1"), "{e}");
        let root = StorageTemplate::for_location("s3://lake", TableKind::Shared, "app", "cfg");
        assert_eq!(root.as_str(), "app/cfg");
        assert!(root.base(&dd).is_err());
    }

    #[test]
    fn batch_files_sort_by_time_then_sequence() {
        let mut v = ["batch-20.parquet", "batch-3-1.parquet", "batch-3.parquet"];
        v.sort_by_key(|p| batch_sort_key(p));
        assert_eq!(
            v,
            ["batch-3.parquet", "batch-3-1.parquet", "batch-20.parquet"]
        );
    }
}
