//! A credentials profile (`storage.credentials.<name>` in the configuration) and the S3
//! client settings it, or the `AWS_*` environment, makes.

use std::collections::BTreeMap;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, RetryConfig};
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

pub(super) fn with_profile(builder: AmazonS3Builder, p: &Profile) -> AmazonS3Builder {
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

pub(super) fn from_env(what: &str) -> Result<AmazonS3Builder> {
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
