//! The server-side copy of an object from another bucket of the same server: S3's
//! `CopyObject`, signed with this bucket's credentials (`object_store` copies only within
//! one bucket).

use std::time::Duration;

use object_store::aws::AwsAuthorizer;
use object_store::client::HttpRequestBody;

use super::Key;
use super::bucket::{Bucket, s3_code};
use super::runtime::block;
use crate::{CoreError, Result};

impl Bucket {
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
        // Every failure names the object it was copying, whether an answer came or not.
        let copying = format!("copying s3://{}/{from} here", source.name);
        let failed = |e: object_store::Error| match self.err(to, e) {
            CoreError::ObjectStore { location, reason } => CoreError::ObjectStore {
                location,
                reason: format!("{copying}: {reason}"),
            },
            other => other,
        };
        let mut attempt = 0u32;
        let (status, body) = loop {
            let sent = if crate::fail::injected("object.copy_slow_down") {
                // As S3 answers a request it wants retried later.
                Ok((
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".to_string(),
                ))
            } else if crate::fail::injected("object.copy_connection_refused") {
                // As a server that stopped listening: a real connection attempt, refused.
                let nowhere = refused_address(&url);
                block(self.send_copy(&copy_source, &nowhere))?.map_err(failed)
            } else {
                block(self.send_copy(&copy_source, &url))?.map_err(failed)
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
            Some(code) => format!("{copying}: {code}, HTTP {status}"),
            None => {
                // One line, whatever the server sent (an HTML page, say).
                let words: Vec<&str> = body.split_whitespace().collect();
                let text: String = words.join(" ").chars().take(200).collect();
                format!("{copying}: HTTP {status}: {text}")
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

/// `url` with its host and port replaced by a loopback port nothing listens on (1, tcpmux):
/// where the fault point `object.copy_connection_refused` sends the copy.
fn refused_address(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{scheme}://127.0.0.1:1{path}")
}
