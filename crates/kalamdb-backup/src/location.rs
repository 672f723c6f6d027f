//! Where a repository is: a directory, or a key prefix in an S3 bucket
//! (`s3://bucket/prefix`, reached with a credentials profile of the configuration or the
//! `AWS_*` environment).

use std::path::{Path, PathBuf};

use kalamdb_core::cold::ColdPath;
use kalamdb_core::cold::object;
use kalamdb_core::{CoreError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    Dir(PathBuf),
    S3 {
        /// `s3://bucket/prefix`, without a trailing `/`.
        url: String,
        /// The credentials profile (`None`: the `AWS_*` environment).
        credentials: Option<String>,
    },
}

impl Default for RepoLocation {
    fn default() -> Self {
        RepoLocation::Dir(PathBuf::new())
    }
}

impl RepoLocation {
    /// A repository argument: `s3://bucket/prefix` or a directory. `credentials` names a
    /// profile, for an `s3://` repository only.
    pub fn parse(text: &str, credentials: Option<&str>) -> Result<RepoLocation> {
        if text.contains("://") {
            let Some((bucket, _)) = object::split_url(text).filter(|_| text.starts_with("s3://"))
            else {
                return Err(CoreError::InvalidInput(format!(
                    "repository '{text}' is not a directory or an s3://bucket/prefix URL"
                )));
            };
            if bucket.len() < 3 {
                return Err(CoreError::InvalidInput(format!(
                    "repository '{text}': '{bucket}' is not a bucket name (3 to 63 characters)"
                )));
            }
            return Ok(RepoLocation::S3 {
                url: text.trim_end_matches('/').to_string(),
                credentials: credentials.map(str::to_string),
            });
        }
        if let Some(p) = credentials {
            return Err(CoreError::InvalidInput(format!(
                "--credentials '{p}' is for s3:// repositories; {text} is a directory"
            )));
        }
        Ok(RepoLocation::Dir(PathBuf::from(text)))
    }

    /// A directory repository.
    pub fn dir(path: impl Into<PathBuf>) -> RepoLocation {
        RepoLocation::Dir(path.into())
    }

    pub fn as_dir(&self) -> Option<&Path> {
        match self {
            RepoLocation::Dir(p) => Some(p),
            RepoLocation::S3 { .. } => None,
        }
    }

    pub fn credentials(&self) -> Option<&str> {
        match self {
            RepoLocation::S3 { credentials, .. } => credentials.as_deref(),
            RepoLocation::Dir(_) => None,
        }
    }

    /// The repository's root: a directory, or the prefix in its bucket with its client.
    pub(crate) fn root(&self) -> Result<ColdPath> {
        match self {
            RepoLocation::Dir(p) => Ok(ColdPath::Local(p.clone())),
            RepoLocation::S3 { url, credentials } => {
                let (bucket, prefix) = object::split_url(url).ok_or_else(|| {
                    CoreError::InvalidInput(format!("repository '{url}' is not an s3:// URL"))
                })?;
                let client =
                    object::bucket(bucket, credentials.as_deref(), &format!("repository {url}"))?;
                Ok(ColdPath::Object(client, object::Key::from(prefix)))
            }
        }
    }
}

impl std::fmt::Display for RepoLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoLocation::Dir(p) => write!(f, "{}", p.display()),
            RepoLocation::S3 { url, .. } => write!(f, "{url}"),
        }
    }
}
