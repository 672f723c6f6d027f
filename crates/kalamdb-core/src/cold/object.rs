//! Object storage (S3) for the cold tier: buckets built with `object_store` (DataFusion's own
//! client) from the credential profiles the process was configured with, and a bridge that
//! lets the engine's synchronous code wait for them.
//!
//! Connection details and secrets live only in configuration (kalamd's config file,
//! `kalamctl --config`): a storage location's `credentials_ref` names a profile; a location
//! without one uses the standard `AWS_*` environment variables.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::reader::{ChunkReader, Length};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{
    ClientConfigKey, HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector,
};
use object_store::multipart::{MultipartStore, PartId};
/// An object's key in its bucket.
pub use object_store::path::Path as Key;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use serde::Deserialize;

use crate::{CoreError, Result};

/// A credentials profile: `storage.credentials.<name>` in the configuration.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Any S3-compatible server, e.g. `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints.
    #[serde(default)]
    pub allow_http: bool,
    /// How long one request may take before it is retried (then failed).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    30
}

/// Secrets never reach a log line.
impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

static PROFILES: RwLock<BTreeMap<String, Profile>> = RwLock::new(BTreeMap::new());
type BucketKey = (String, Option<String>);
static BUCKETS: Mutex<Option<HashMap<BucketKey, Arc<Bucket>>>> = Mutex::new(None);

/// Sets the process's credential profiles (kalamd's config, `kalamctl --config`). Buckets
/// built from earlier profiles are forgotten.
pub fn configure(profiles: BTreeMap<String, Profile>) {
    if let Ok(mut p) = PROFILES.write() {
        *p = profiles;
    }
    if let Ok(mut b) = BUCKETS.lock() {
        *b = None;
    }
}

/// Adds (or replaces) one profile, leaving the others.
pub fn add_profile(name: &str, profile: Profile) {
    if let Ok(mut p) = PROFILES.write() {
        p.insert(name.to_string(), profile);
    }
    if let Ok(mut b) = BUCKETS.lock() {
        *b = None;
    }
}

/// The profiles under `storage.credentials` in a kalamd configuration file (the rest of the
/// file is not read): how `kalamctl --config` reaches the buckets kalamd does.
pub fn profiles_from_file(path: &std::path::Path) -> Result<BTreeMap<String, Profile>> {
    let bad = |why: String| CoreError::InvalidInput(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let root: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let Some(credentials) = root
        .get("storage")
        .and_then(|s| s.get("credentials"))
        .filter(|c| !c.is_null())
    else {
        return Ok(BTreeMap::new());
    };
    let profiles: BTreeMap<String, Profile> = serde_norway::from_value(credentials.clone())
        .map_err(|e| bad(format!("storage.credentials: {e}")))?;
    Ok(profiles)
}

/// The bucket and key prefix of an `s3://bucket/prefix` URL.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix.trim_matches('/')))
}

/// One bucket, reached with one profile (or the environment).
pub struct Bucket {
    name: String,
    /// The credentials profile (`None`: the `AWS_*` environment), to name in errors.
    profile: Option<String>,
    store: Arc<AmazonS3>,
    /// How requests the store does not make itself reach the bucket (a copy from another
    /// bucket): its URL, region and an HTTP client with the store's options.
    direct: Direct,
}

struct Direct {
    /// `https://s3.{region}.amazonaws.com/{bucket}`, `{endpoint}/{bucket}`, or the endpoint
    /// itself with virtual-hosted requests: as the store addresses the bucket.
    url: String,
    region: String,
    http: HttpClient,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}", self.name)
    }
}

/// The bucket `name`, reached with `profile` (`None`: the `AWS_*` environment). `what` names
/// who asks ("storage location 'lake'", "repository s3://b/p"), for the error when the
/// profile is not configured.
pub fn bucket(name: &str, profile: Option<&str>, what: &str) -> Result<Arc<Bucket>> {
    let key = (name.to_string(), profile.map(str::to_string));
    if let Some(b) = BUCKETS
        .lock()
        .ok()
        .and_then(|b| b.as_ref().and_then(|b| b.get(&key).cloned()))
    {
        return Ok(b);
    }
    let builder = match profile {
        Some(p) => {
            let profile = PROFILES
                .read()
                .ok()
                .and_then(|all| all.get(p).cloned())
                .ok_or_else(|| {
                    CoreError::Conflict(format!(
                        "{what} uses credentials profile '{p}', which the configuration does not define; add storage.credentials.{p} to the config file (kalamd --config, kalamctl --config or KALAMDB_CONFIG)"
                    ))
                })?;
            with_profile(AmazonS3Builder::new(), &profile)
        }
        None => from_env(what)?,
    };
    let setup = |e: &dyn std::fmt::Display| CoreError::ObjectStore {
        location: format!("s3://{name}"),
        reason: format!("cannot set up the client for {what}: {e}"),
    };
    let direct = direct(&builder, name).map_err(|e| setup(&e))?;
    let store = builder
        .with_bucket_name(name)
        .build()
        .map_err(|e| setup(&e))?;
    let bucket = Arc::new(Bucket {
        name: name.to_string(),
        profile: profile.map(str::to_string),
        store: Arc::new(store),
        direct,
    });
    if let Ok(mut b) = BUCKETS.lock() {
        b.get_or_insert_with(HashMap::new)
            .insert(key, Arc::clone(&bucket));
    }
    Ok(bucket)
}

/// The bucket's URL, region and an HTTP client, from the builder's settings, addressed as
/// `object_store` addresses it.
fn direct(builder: &AmazonS3Builder, name: &str) -> object_store::Result<Direct> {
    let get = |key: AmazonS3ConfigKey| builder.get_config_value(&key);
    let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let virtual_hosted = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let url = match (get(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
        (Some(endpoint), true) => endpoint,
        (Some(endpoint), false) => format!("{}/{name}", endpoint.trim_end_matches('/')),
        (None, true) => format!("https://{name}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{name}"),
    };
    let mut options = ClientOptions::new();
    for key in [
        ClientConfigKey::AllowHttp,
        ClientConfigKey::Timeout,
        ClientConfigKey::ConnectTimeout,
    ] {
        if let Some(value) = get(AmazonS3ConfigKey::Client(key)) {
            options = options.with_config(key, value);
        }
    }
    let http = ReqwestConnector::default().connect(&options)?;
    Ok(Direct { url, region, http })
}

/// A key as it goes in a URL path (or `x-amz-copy-source`): every byte but the unreserved
/// ones and `/` percent-encoded, as S3's canonical requests have it.
fn url_path(key: &Key) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(key.as_ref(), KEEP).to_string()
}

fn with_profile(builder: AmazonS3Builder, p: &Profile) -> AmazonS3Builder {
    let mut b = builder
        .with_access_key_id(&p.access_key_id)
        .with_secret_access_key(&p.secret_access_key)
        .with_region(p.region.as_deref().unwrap_or("us-east-1"));
    if let Some(token) = &p.session_token {
        b = b.with_token(token);
    }
    if let Some(endpoint) = &p.endpoint {
        b = b.with_endpoint(endpoint);
    }
    client(b, p.timeout_seconds, p.allow_http)
}

fn from_env(what: &str) -> Result<AmazonS3Builder> {
    if std::env::var("AWS_ACCESS_KEY_ID")
        .unwrap_or_default()
        .is_empty()
    {
        return Err(CoreError::Conflict(format!(
            "{what} names no credentials profile and AWS_ACCESS_KEY_ID is not set; name a profile in the config file (storage.credentials) or export the AWS_* variables"
        )));
    }
    let mut b = AmazonS3Builder::from_env();
    let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    Ok(client(b, default_timeout(), allow_http))
}

/// The HTTP client's options (they replace the builder's, so `allow_http` is set here). A
/// request that hangs fails after `timeout` and is retried twice: a server that stopped
/// answering fails the operation within a few timeouts, not the crate's default minutes.
fn client(b: AmazonS3Builder, timeout_seconds: u64, allow_http: bool) -> AmazonS3Builder {
    let timeout = Duration::from_secs(timeout_seconds.max(1));
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: timeout.saturating_mul(3),
        ..RetryConfig::default()
    };
    b.with_client_options(
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(timeout)
            .with_connect_timeout(timeout),
    )
    .with_retry(retry)
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
fn s3_code(text: &str) -> Option<&str> {
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

/// The runtime object-store requests run on: its own, so that synchronous engine code (on
/// any thread, in a runtime or not) can wait for them.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kalamdb-object-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| CoreError::ObjectStore {
        location: "s3".into(),
        reason: format!("cannot start the object-store runtime: {e}"),
    })
}

/// Runs `f` on the object-store runtime and waits for it. Inside another runtime's thread
/// (where blocking on a runtime is refused), it waits from a short-lived thread of its own.
fn block<F>(f: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(f));
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join()).map_err(|_| CoreError::ObjectStore {
        location: "s3".into(),
        reason: "an object-store request panicked".into(),
    })
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

    fn err(&self, key: &Key, e: object_store::Error) -> CoreError {
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
    fn refused(&self, url: &str, code: &str) -> CoreError {
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

    /// Copies the object `from` of `source` (a bucket of the same server, see
    /// [`Bucket::same_server`]) to `to` in this bucket, server-side: S3's `CopyObject`, its
    /// bytes never leaving the server.
    pub fn copy_from(&self, source: &Bucket, from: &Key, to: &Key) -> Result<()> {
        if source.name == self.name {
            return self.copy(from, to);
        }
        let copy_source = format!("{}/{}", source.name, url_path(from));
        let url = format!("{}/{}", self.direct.url, url_path(to));
        // Retried as the store retries its own requests: a failure to connect, a server
        // error (5xx), or a 200 whose body is S3's InternalError or SlowDown.
        let mut attempt = 0u32;
        let (status, body) = loop {
            let sent = if crate::fail::injected("object.copy_slow_down") {
                // As S3 answers a request it wants retried later.
                Ok((
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".to_string(),
                ))
            } else {
                block(self.send_copy(&copy_source, &url))?.map_err(|e| self.err(to, e))
            };
            let transient = match &sent {
                Err(_) => true,
                Ok((status, body)) => {
                    status.is_server_error()
                        || matches!(s3_code(body), Some("InternalError" | "SlowDown"))
                }
            };
            if !transient || attempt >= 2 {
                break sent?;
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(100u64 << attempt));
        };
        // CopyObject may answer 200 and still fail: the error is then in the body.
        if status.is_success() && !body.contains("<Error>") {
            return Ok(());
        }
        let status = status.as_u16();
        if matches!(status, 401 | 403) {
            let code = match s3_code(&body) {
                Some(code) => format!("{code}, HTTP {status}"),
                None => format!("HTTP {status}"),
            };
            return Err(self.refused(&self.url(to), &code));
        }
        let reason = match s3_code(&body) {
            Some(code) => format!(
                "copying s3://{}/{from} here: {code}, HTTP {status}",
                source.name
            ),
            None => {
                // One line, whatever the server sent (an HTML page, say).
                let words: Vec<&str> = body.split_whitespace().collect();
                let text: String = words.join(" ").chars().take(200).collect();
                format!(
                    "copying s3://{}/{from} here: HTTP {status}: {text}",
                    source.name
                )
            }
        };
        Err(CoreError::ObjectStore {
            location: self.url(to),
            reason,
        })
    }

    /// One signed `CopyObject` request: the answer's status and body.
    async fn send_copy(
        &self,
        copy_source: &str,
        url: &str,
    ) -> object_store::Result<(http::StatusCode, String)> {
        let generic = |e: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
            store: "S3",
            source: e,
        };
        let credential = self.store.credentials().get_credential().await?;
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(url)
            .header("x-amz-copy-source", copy_source)
            .body(HttpRequestBody::empty())
            .map_err(|e| generic(Box::new(e)))?;
        AwsAuthorizer::new(&credential, "s3", &self.direct.region).authorize(&mut request, None);
        let response = self
            .direct
            .http
            .execute(request)
            .await
            .map_err(|e| generic(Box::new(e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| generic(Box::new(e)))?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A writer that uploads as it goes: the object appears, complete, only at
    /// [`ObjectWriter::finish`].
    pub fn writer(self: &Arc<Self>, key: Key) -> ObjectWriter {
        ObjectWriter {
            bucket: Arc::clone(self),
            key,
            buf: Vec::new(),
            upload: None,
            journal: None,
        }
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

/// Parts of a multipart upload: S3's minimum is 5 MiB for every part but the last.
const PART_BYTES: usize = 8 << 20;

/// Where a writer records the multipart uploads it opens, so that one a killed process left
/// open (its parts stored, and billed, but no object) can be aborted by whoever comes next
/// (see [`Bucket::abort_upload`]).
pub trait UploadJournal: Send + Sync {
    /// Records, durably, that `upload` of `key` is open. Called before any part is sent.
    fn opened(&self, key: &Key, upload: &str) -> Result<()>;
    /// Forgets it: the upload completed or was aborted.
    fn closed(&self, upload: &str) -> Result<()>;
}

/// An open multipart upload: its id and the parts sent.
struct Open {
    id: String,
    parts: Vec<PartId>,
    /// The part on its way while the writer fills the next: one at a time, so memory stays
    /// at two parts and the caller's encoding overlaps the network.
    sending: Option<tokio::task::JoinHandle<object_store::Result<PartId>>>,
}

/// A streaming upload: one `PUT` for an object smaller than a part, else a multipart upload
/// whose parts go as they fill, so memory stays at one part whatever the object's size. An
/// upload dropped before [`ObjectWriter::finish`] is aborted: no object, no parts left. A
/// process killed meanwhile cannot abort it; with a journal ([`ObjectWriter::journaled`])
/// the upload is on record for the next one to abort.
pub struct ObjectWriter {
    bucket: Arc<Bucket>,
    key: Key,
    buf: Vec<u8>,
    upload: Option<Open>,
    journal: Option<Arc<dyn UploadJournal>>,
}

impl ObjectWriter {
    /// Records the multipart upload, if there is one, in `journal` while it is open.
    pub fn journaled(mut self, journal: Arc<dyn UploadJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    fn start(&self) -> Result<Open> {
        let store = &self.bucket.store;
        let id =
            block(store.create_multipart(&self.key))?.map_err(|e| self.bucket.err(&self.key, e))?;
        if let Some(journal) = &self.journal
            && let Err(e) = journal.opened(&self.key, &id)
        {
            let _ = self.bucket.abort_upload(&self.key, &id);
            return Err(e);
        }
        Ok(Open {
            id,
            parts: Vec::new(),
            sending: None,
        })
    }

    /// Waits for the part on its way, if any.
    fn settle(&mut self) -> Result<()> {
        let Some(handle) = self.upload.as_mut().and_then(|open| open.sending.take()) else {
            return Ok(());
        };
        let sent = match block(handle)? {
            Ok(Ok(part)) => part,
            Ok(Err(e)) => return Err(self.bucket.err(&self.key, e)),
            Err(e) => {
                return Err(CoreError::ObjectStore {
                    location: self.bucket.url(&self.key),
                    reason: format!("sending a part failed: {e}"),
                });
            }
        };
        let Some(open) = self.upload.as_mut() else {
            return Ok(());
        };
        open.parts.push(sent);
        if open.parts.len() == 1 {
            crate::fail::point("object.part_sent");
        }
        Ok(())
    }

    /// Sends what is buffered as the next part, once the one before it is up.
    fn send_part(&mut self) -> Result<()> {
        self.settle()?;
        if self.upload.is_none() {
            self.upload = Some(self.start()?);
        }
        let rt = runtime()?;
        let Some(open) = self.upload.as_mut() else {
            return Ok(());
        };
        let part = PutPayload::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PART_BYTES),
        ));
        let store = Arc::clone(&self.bucket.store);
        let (key, id, index) = (self.key.clone(), open.id.clone(), open.parts.len());
        open.sending = Some(rt.spawn(async move { store.put_part(&key, &id, index, part).await }));
        Ok(())
    }

    /// Completes the object: from here on it exists, whole.
    pub fn finish(mut self) -> Result<()> {
        if self.upload.is_none() {
            return self.bucket.put(&self.key, std::mem::take(&mut self.buf));
        }
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        self.settle()?;
        let Some(open) = self.upload.take() else {
            return Ok(());
        };
        let completing =
            self.bucket
                .store
                .complete_multipart(&self.key, &open.id, open.parts.clone());
        match block(completing)? {
            Ok(_) => {
                // A record left behind names an upload that is no longer open: aborting it
                // later is a no-op, so a failure to forget it is not the upload's failure.
                if let Some(journal) = &self.journal {
                    let _ = journal.closed(&open.id);
                }
                Ok(())
            }
            Err(e) => {
                self.upload = Some(open);
                Err(self.bucket.err(&self.key, e))
            }
        }
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PART_BYTES {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    /// An upload that did not complete is aborted, and then forgotten. A part on its way is
    /// let finish first: S3 may keep a part that lands after the abort.
    fn drop(&mut self) {
        let Some(open) = self.upload.take() else {
            return;
        };
        if let Some(part) = open.sending {
            let _ = block(part);
        }
        if self.bucket.abort_upload(&self.key, &open.id).is_ok()
            && let Some(journal) = &self.journal
        {
            let _ = journal.closed(&open.id);
        }
    }
}

/// An object read by ranges, for Parquet's reader: the footer, a bloom filter and the pages
/// a lookup needs, each a ranged GET.
#[derive(Clone)]
pub struct RangedObject {
    bucket: Arc<Bucket>,
    key: Key,
    size: u64,
}

impl RangedObject {
    pub fn new(bucket: Arc<Bucket>, key: Key, size: u64) -> Self {
        RangedObject { bucket, key, size }
    }
}

impl Length for RangedObject {
    fn len(&self) -> u64 {
        self.size
    }
}

/// Sequential reads (page headers) fetch this much at a time.
const READ_AHEAD: u64 = 64 << 10;

impl ChunkReader for RangedObject {
    type T = RangeRead;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<RangeRead> {
        Ok(RangeRead {
            object: self.clone(),
            pos: start,
            buf: bytes::Bytes::new(),
        })
    }

    fn get_bytes(
        &self,
        start: u64,
        length: usize,
    ) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        let end = start.saturating_add(length as u64);
        self.bucket
            .get_range(&self.key, start..end)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// A forward reader over a [`RangedObject`], fetching [`READ_AHEAD`] bytes at a time.
pub struct RangeRead {
    object: RangedObject,
    pos: u64,
    buf: bytes::Bytes,
}

impl Read for RangeRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.object.size {
                return Ok(0);
            }
            let end = self.pos.saturating_add(READ_AHEAD).min(self.object.size);
            self.buf = self
                .object
                .bucket
                .get_range(&self.object.key, self.pos..end)
                .map_err(std::io::Error::other)?;
            self.pos = end;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        bytes::Buf::advance(&mut self.buf, n);
        Ok(n)
    }
}
