//! One bucket reached with one profile: its requests, waited for from synchronous code, and
//! their errors in the engine's terms (a refusal of the credentials names the profile and
//! the fix).

use std::ops::Range;
use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::client::HttpClient;
use object_store::multipart::MultipartStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use super::Key;
use super::runtime::block;
use crate::{CoreError, Result};

/// Parts of a multipart upload, and the pieces a whole object is read in: S3's minimum part
/// is 5 MiB for every part but the last.
pub(super) const PART_BYTES: usize = 8 << 20;

/// One bucket, reached with one profile (or the environment).
pub struct Bucket {
    pub(super) name: String,
    /// The credentials profile (`None`: the `AWS_*` environment), to name in errors.
    pub(super) profile: Option<String>,
    pub(super) store: Arc<AmazonS3>,
    /// How requests the store does not make itself reach the bucket (a copy from another
    /// bucket): its URL, region and an HTTP client with the store's options.
    pub(super) direct: Direct,
}

pub(super) struct Direct {
    /// `https://s3.{region}.amazonaws.com/{bucket}`, `{endpoint}/{bucket}`, or the endpoint
    /// itself with virtual-hosted requests: as the store addresses the bucket.
    pub(super) url: String,
    pub(super) region: String,
    pub(super) http: HttpClient,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}", self.name)
    }
}

/// The S3 error code (`SignatureDoesNotMatch`, `AccessDenied`, ...) or HTTP status of a
/// request the server refused for its credentials (401 or 403); `None` for any other error.
fn refusal(e: &object_store::Error, text: &str) -> Option<String> {
    let status = match e {
        object_store::Error::PermissionDenied { .. } => "HTTP 403",
        object_store::Error::Unauthenticated { .. } => "HTTP 401",
        _ if text.contains("403 Forbidden") => "HTTP 403",
        _ if text.contains("401 Unauthorized") => "HTTP 401",
        _ => return None,
    };
    Some(match s3_code(text) {
        Some(code) => format!("{code}, {status}"),
        None => status.to_string(),
    })
}

/// The `<Code>` of an S3 error answer, if the text holds one.
pub(super) fn s3_code(text: &str) -> Option<&str> {
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim())
        .filter(|c| !c.is_empty() && c.len() < 64)
}

/// An error with every cause under it, so that "builder error" says which part failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

fn not_found(key: &Key) -> object_store::Error {
    object_store::Error::NotFound {
        path: key.to_string(),
        source: "no such object".into(),
    }
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The credentials profile it is reached with (`None`: the `AWS_*` environment).
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    pub fn url(&self, key: &Key) -> String {
        format!("s3://{}/{}", self.name, key)
    }

    pub(super) fn err(&self, key: &Key, e: object_store::Error) -> CoreError {
        let url = self.url(key);
        match e {
            object_store::Error::NotFound { .. } => CoreError::Io {
                path: url,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            },
            other => {
                let reason = with_causes(&other);
                match refusal(&other, &reason) {
                    Some(code) => self.refused(&url, &code),
                    None => CoreError::ObjectStore {
                        location: url,
                        reason,
                    },
                }
            }
        }
    }

    /// The server refused this bucket's credentials (`code`: S3's error code and status).
    pub(super) fn refused(&self, url: &str, code: &str) -> CoreError {
        CoreError::Conflict(format!(
            "object storage {url}: the server refused {} ({code}); {}",
            self.credentials(),
            self.credentials_fix()
        ))
    }

    fn credentials(&self) -> String {
        match &self.profile {
            Some(p) => format!("the credentials of profile '{p}'"),
            None => "the credentials in the AWS_* environment".into(),
        }
    }

    fn credentials_fix(&self) -> String {
        let keys = match &self.profile {
            Some(p) => format!(
                "check access_key_id and secret_access_key of storage.credentials.{p} in the config file"
            ),
            None => "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        };
        format!(
            "{keys}, and that they may list, read, write and delete in s3://{}",
            self.name
        )
    }

    /// The object's metadata; `None` if there is none.
    pub fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        match block(self.store.head(key))? {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    pub fn get(&self, key: &Key) -> Result<bytes::Bytes> {
        let fetch = async {
            let got = self.store.get(key).await?;
            got.bytes().await
        };
        block(fetch)?.map_err(|e| self.err(key, e))
    }

    pub fn get_range(&self, key: &Key, range: Range<u64>) -> Result<bytes::Bytes> {
        block(self.store.get_range(key, range))?.map_err(|e| self.err(key, e))
    }

    /// Reads the whole object in ranged `GET`s of [`PART_BYTES`], handing each piece to
    /// `each` in order: memory stays at one piece whatever the object's size. Returns its size.
    pub fn get_chunks(&self, key: &Key, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<u64> {
        let size = self
            .head(key)?
            .ok_or_else(|| self.err(key, not_found(key)))?
            .size;
        let mut pos = 0u64;
        while pos < size {
            let end = pos.saturating_add(PART_BYTES as u64).min(size);
            each(&self.get_range(key, pos..end)?)?;
            pos = end;
        }
        Ok(size)
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete(&self, key: &Key) -> Result<()> {
        match block(self.store.delete(key))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Every object under `prefix` (recursively).
    pub fn list(&self, prefix: &Key) -> Result<Vec<ObjectMeta>> {
        use futures::TryStreamExt as _;
        let listing = self.store.list(Some(prefix)).try_collect::<Vec<_>>();
        block(listing)?.map_err(|e| self.err(prefix, e))
    }

    /// The "directories" (common prefixes) and objects directly under `prefix`.
    pub fn list_dir(&self, prefix: &Key) -> Result<(Vec<Key>, Vec<ObjectMeta>)> {
        let listing = block(self.store.list_with_delimiter(Some(prefix)))?
            .map_err(|e| self.err(prefix, e))?;
        Ok((listing.common_prefixes, listing.objects))
    }

    /// Writes a whole object at once.
    pub fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<()> {
        block(self.store.put(key, PutPayload::from(bytes)))?
            .map(|_| ())
            .map_err(|e| self.err(key, e))
    }

    /// Writes an object only if there is none under `key` (a conditional `PUT`); `false`
    /// when one exists.
    pub fn put_if_absent(&self, key: &Key, bytes: Vec<u8>) -> Result<bool> {
        let options = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..object_store::PutOptions::default()
        };
        match block(self.store.put_opts(key, PutPayload::from(bytes), options))? {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Copies an object within the bucket, server-side.
    pub fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        block(self.store.copy(from, to))?.map_err(|e| self.err(from, e))
    }

    /// Whether a request with this bucket's credentials, to its server, can read `other`:
    /// both are reached with the same profile (or both with the `AWS_*` environment).
    pub fn same_server(&self, other: &Bucket) -> bool {
        self.profile == other.profile
    }

    /// Aborts the multipart upload `upload` of `key`: its parts are deleted. One that is no
    /// longer open (completed, or aborted already) is not an error.
    pub fn abort_upload(&self, key: &Key, upload: &str) -> Result<()> {
        let id = upload.to_string();
        match block(self.store.abort_multipart(key, &id))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }
}
