//! The two S3 requests object_store does not make, signed by hand with its
//! exported SigV4 signer (`AwsAuthorizer`) and sent through a client built
//! from the same options as the store's (timeouts, the endpoint's CA):
//! - a copy that replaces the object's metadata (`x-amz-metadata-directive:
//!   REPLACE`), which is how `MFMT` sets `x-amz-meta-mtime`;
//! - `UploadPartCopy` with a source range, which is how an object above the
//!   endpoint's CopyObject limit (5 GiB on AWS) is copied inside the store.
//!
//! Both copy only while the source is still the version recorded
//! (`x-amz-copy-source-if-match`).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{
    HttpClient, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector,
};
use object_store::path::Path as Key;
use object_store::ClientOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What S3 leaves unencoded in a key's path (RFC 3986's unreserved set),
/// and the `/` between its segments.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// A query value: as a path, and `/` encoded too.
const QUERY_VALUE: &AsciiSet = &KEY_PATH.add(b'/');

/// Why a hand-signed request failed.
#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    /// The source is not the version recorded any more (412).
    #[error("the source object changed")]
    Changed,
    /// The source is gone (404).
    #[error("the source object is missing")]
    Missing,
    #[error("{0}")]
    Failed(String),
}

pub(super) struct Signed {
    http: HttpClient,
    store: Arc<AmazonS3>,
    /// `endpoint/bucket` (path style) or the endpoint as given.
    bucket_url: String,
    bucket: String,
    region: String,
    sign_payload: bool,
}

impl Signed {
    pub(super) fn new(
        store: Arc<AmazonS3>,
        options: &ClientOptions,
        placement: &super::Placement,
        sign_payload: bool,
    ) -> Result<Self, object_store::Error> {
        let endpoint = placement.endpoint.trim_end_matches('/');
        Ok(Self {
            http: ReqwestConnector::default().connect(options)?,
            store,
            bucket_url: match placement.path_style {
                true => format!("{endpoint}/{}", placement.bucket),
                false => endpoint.to_owned(),
            },
            bucket: placement.bucket.clone(),
            region: placement.region.clone(),
            sign_payload,
        })
    }

    fn url(&self, key: &Key) -> String {
        format!(
            "{}/{}",
            self.bucket_url,
            utf8_percent_encode(key.as_ref(), KEY_PATH)
        )
    }

    fn source(&self, key: &Key) -> String {
        format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(key.as_ref(), KEY_PATH)
        )
    }

    /// Copies `from` onto `to` (the same key for `MFMT`) with new metadata:
    /// the content type and `x-amz-meta-mtime` (Unix seconds, what rclone
    /// reads too), while `from` is still `etag`; the copy's ETag, when the
    /// reply gives it.
    pub(super) async fn copy_with_mtime(
        &self,
        from: &Key,
        etag: &str,
        to: &Key,
        mtime: u64,
    ) -> Result<Option<String>, SignedError> {
        let headers = [
            ("x-amz-copy-source", self.source(from)),
            ("x-amz-copy-source-if-match", unquoted(etag)),
            ("x-amz-metadata-directive", "REPLACE".to_owned()),
            ("x-amz-meta-mtime", mtime.to_string()),
            (CONTENT_TYPE.as_str(), super::CONTENT_TYPE.to_owned()),
        ];
        let body = self.send(self.url(to), &headers).await?;
        Ok(etag_of(&body))
    }

    /// Copies bytes `range` of `from` (while it is `etag`) as part `index`
    /// (0-based) of multipart upload `id` at `to`; the part's ETag.
    pub(super) async fn copy_part(
        &self,
        from: &Key,
        etag: &str,
        range: Range<u64>,
        to: &Key,
        id: &str,
        index: usize,
    ) -> Result<String, SignedError> {
        let url = format!(
            "{}?partNumber={}&uploadId={}",
            self.url(to),
            index + 1,
            utf8_percent_encode(id, QUERY_VALUE)
        );
        let headers = [
            ("x-amz-copy-source", self.source(from)),
            ("x-amz-copy-source-if-match", unquoted(etag)),
            (
                "x-amz-copy-source-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            ),
        ];
        let body = self.send(url, &headers).await?;
        etag_of(&body).ok_or_else(|| {
            SignedError::Failed(format!("UploadPartCopy answered without an ETag: {body}"))
        })
    }

    /// A signed PUT with no body; the reply's text. A failure of the
    /// connection or the server (5xx, or an error document after a 200) is
    /// tried again, twice; the requests are idempotent.
    async fn send(&self, url: String, headers: &[(&str, String)]) -> Result<String, SignedError> {
        let mut tries = 0;
        loop {
            match self.send_once(&url, headers).await {
                Ok(text) => return Ok(text),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Transient(why)) if tries == RETRIES => {
                    return Err(SignedError::Failed(why))
                }
                Err(Attempt::Transient(why)) => {
                    tries += 1;
                    tracing::debug!(tries, "S3 request failed, trying again: {why}");
                    tokio::time::sleep(Duration::from_millis(250 << tries)).await;
                }
            }
        }
    }

    async fn send_once(&self, url: &str, headers: &[(&str, String)]) -> Result<String, Attempt> {
        let fail = |why: String| Attempt::Final(SignedError::Failed(why));
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = Method::PUT;
        // S3 wants a length even for no body.
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        *request.uri_mut() = url
            .parse()
            .map_err(|e| fail(format!("request URL {url}: {e}")))?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| fail(format!("header {name}: {e}")))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| fail(format!("header {name}: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| fail(e.to_string()))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .with_sign_payload(self.sign_payload)
            .try_authorize(&mut request, None)
            .map_err(|e| fail(format!("signing: {e}")))?;
        let transient = |why: String| Attempt::Transient(why);
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| transient(super::chain(&e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| transient(super::chain(&e)))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        match status {
            StatusCode::PRECONDITION_FAILED => Err(Attempt::Final(SignedError::Changed)),
            StatusCode::NOT_FOUND => Err(Attempt::Final(SignedError::Missing)),
            // A copy can fail after its 200 has gone out: S3 then sends an
            // error document as the body.
            s if s.is_success() && !text.contains("<Error>") => Ok(text),
            s if s.is_success() || s.is_server_error() => {
                Err(transient(format!("HTTP {s}: {}", text.trim())))
            }
            s => Err(fail(format!("HTTP {s}: {}", text.trim()))),
        }
    }
}

/// How one try of a request ended, when it failed.
enum Attempt {
    Final(SignedError),
    Transient(String),
}

/// Tries after the first, for a connection or server failure.
const RETRIES: u32 = 2;

/// Ceph 16 compares conditional headers with the ETag as it stores it,
/// without quotes; AWS takes either.
fn unquoted(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// The `<ETag>` of a copy's reply, quoted as a response header carries it.
fn etag_of(body: &str) -> Option<String> {
    let start = body.find("<ETag>")? + "<ETag>".len();
    let end = start + body[start..].find("</ETag>")?;
    let raw = body[start..end]
        .replace("&quot;", "\"")
        .replace("&#34;", "\"");
    Some(format!("\"{}\"", raw.trim().trim_matches('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_copy_reply_gives_its_quoted_etag() {
        let ceph = r#"<?xml version="1.0" encoding="UTF-8"?><CopyPartResult><LastModified>2026-12-07T08:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyPartResult>"#;
        assert_eq!(
            etag_of(ceph).as_deref(),
            Some("\"9b2cf535f27731c974343645a3985328\"")
        );
        let bare = "<CopyPartResult><ETag>abc</ETag></CopyPartResult>";
        assert_eq!(etag_of(bare).as_deref(), Some("\"abc\""));
        assert_eq!(etag_of("<CopyPartResult/>"), None);
    }

    #[test]
    fn keys_are_encoded_as_s3_signs_them() {
        let key = Key::parse("ftp/home/a b/é+[1].csv").unwrap();
        assert_eq!(
            utf8_percent_encode(key.as_ref(), KEY_PATH).to_string(),
            "ftp/home/a%20b/%C3%A9%2B%5B1%5D.csv"
        );
        assert_eq!(
            utf8_percent_encode("2~x/y=", QUERY_VALUE).to_string(),
            "2~x%2Fy%3D"
        );
    }
}
