//! Object storage (S3) for the cold tier: buckets built with `object_store` (DataFusion's own
//! client) from the credential profiles the process was configured with, and a bridge that
//! lets the engine's synchronous code wait for them.
//!
//! Connection details and secrets live only in configuration (kalamd's config file,
//! `kalamctl --config`): a storage location's `credentials_ref` names a profile; a location
//! without one uses the standard `AWS_*` environment variables.
//!
//! - `profile`: a credentials profile, read from the config file, and the client it makes;
//! - `registry`: the process's profiles and the buckets built from them;
//! - `bucket`: one bucket's requests, and their errors in the engine's terms;
//! - `copy`: the server-side copy from another bucket of the same server;
//! - `writer`: streaming (multipart) uploads;
//! - `ranged`: an object read by ranges, for Parquet's reader;
//! - `runtime`: the runtime the requests run on, and how synchronous code waits for them.

mod bucket;
mod copy;
mod profile;
mod ranged;
mod registry;
mod runtime;
mod writer;

/// An object's key in its bucket.
pub use object_store::path::Path as Key;

pub use bucket::Bucket;
pub use profile::{Profile, profiles_from_file};
pub use ranged::{RangeRead, RangedObject};
pub use registry::{add_profile, bucket, configure};
pub use writer::{ObjectWriter, UploadJournal};

/// The bucket and key prefix of an `s3://bucket/prefix` URL.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix.trim_matches('/')))
}
