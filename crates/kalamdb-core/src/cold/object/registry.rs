//! The process's credential profiles, and the buckets built from them (one client per
//! bucket and profile, kept for the process's life).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use object_store::ClientOptions;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{ClientConfigKey, HttpConnector, ReqwestConnector};

use super::bucket::{Bucket, Direct};
use super::profile::{Profile, from_env, with_profile};
use crate::{CoreError, Result};

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
