//! Object storage for files' contents (`--storage s3`, issue 25): the
//! namespace, uploads' bookkeeping and events stay in Raft; each file's bytes
//! are one object of an S3-compatible bucket, under the file's path.
//!
//! The client is object_store (Apache Arrow's): one crate for S3 and any
//! later Azure or GCS backend, built on reqwest with the same rustls and
//! aws-lc-rs as the rest of Wharf, multipart uploads with parts in flight,
//! and streamed ranged reads.

pub mod credentials;
pub mod scan;
mod signed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use wharf_server::fs::{FileReader, FsError};
use wharf_store::records::ObjectRef;

pub use credentials::Credentials;

/// Parts of a multipart upload in flight at once, per upload.
pub const PARTS_IN_FLIGHT: usize = 3;
/// S3's smallest part (all but the last).
const MIN_PART_MIB: u64 = 5;
pub const DEFAULT_PART_MIB: u64 = 8;
/// The largest object one CopyObject may copy, AWS's limit (some
/// S3-compatible stores set a lower one: `--s3-copy-max-mib`). Larger
/// objects are copied a range per part (UploadPartCopy).
pub const DEFAULT_COPY_MAX_MIB: u64 = 5 << 10;
/// S3's most parts per multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Bytes per UploadPartCopy when the copy limit is larger (the store copies
/// a part before it answers, and the client waits 15 s for a first byte).
const COPY_PART: u64 = 128 << 20;
/// What every object Wharf writes is served as.
const CONTENT_TYPE: &str = "application/octet-stream";

/// Why object storage cannot be used; each stops the node at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("--storage s3 needs {0}")]
    Missing(&'static str),
    #[error("no S3 credentials: give --s3-credentials-file or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    NoCredentials,
    #[error("S3 credentials from {from}: {why}")]
    Credentials { from: String, why: String },
    #[error("--s3-ca-file {}: {why}", path.display())]
    Ca { path: PathBuf, why: String },
    #[error("--s3-part-size-mib {0}: S3 parts are at least {MIN_PART_MIB} MiB")]
    PartSize(u64),
    #[error(
        "--s3-copy-max-mib {0}: from {MIN_PART_MIB} to {DEFAULT_COPY_MAX_MIB} (S3's part sizes)"
    )]
    CopyMax(u64),
    #[error("S3 client for {endpoint}: {why}")]
    Client { endpoint: String, why: String },
    #[error("bucket {bucket} does not exist at {endpoint}")]
    NoBucket { bucket: String, endpoint: String },
    #[error("S3 at {endpoint} refused the credentials ({hint}): {why}")]
    Refused {
        endpoint: String,
        hint: String,
        why: String,
    },
    #[error("S3 at {endpoint}: its TLS certificate is not trusted (give its CA with --s3-ca-file): {why}")]
    Tls { endpoint: String, why: String },
    #[error("S3 at {endpoint}, bucket {bucket}: {why}")]
    Probe {
        endpoint: String,
        bucket: String,
        why: String,
    },
}

/// Where the cluster's objects are; the same on every node (recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub endpoint: String,
    pub bucket: String,
    /// Keys start with it (no slashes at either end); may be empty.
    pub prefix: String,
    pub region: String,
    pub path_style: bool,
}

/// An error with its causes, the way an operator needs to read it (reqwest
/// keeps the TLS or connection reason in a cause).
fn chain(e: &dyn std::error::Error) -> String {
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

/// A key as recorded in the namespace (made by `Objects::key`, so valid).
pub(crate) fn recorded(key: &str) -> Key {
    Key::parse(key).unwrap_or_else(|_| Key::from(key))
}

/// What reading a file's object found at its key.
pub enum Opened {
    Bytes(FileReader),
    /// Another object than the one recorded, and its modification time
    /// (Unix seconds): put there outside Wharf, or by an upload whose node
    /// died between storing it and recording it.
    Replaced(ObjectRef, u64),
}

/// The bucket, as the file system uses it.
pub struct Objects {
    store: Arc<AmazonS3>,
    placement: Placement,
    hint: String,
    part_size: usize,
    copy_max: u64,
    signed: signed::Signed,
}

impl Objects {
    /// A client for `placement` (nothing is sent yet: see `probe`).
    pub fn connect(
        placement: Placement,
        credentials: &Credentials,
        ca_file: Option<PathBuf>,
        part_size_mib: Option<u64>,
    ) -> Result<Self, ObjectsError> {
        let part_mib = part_size_mib.unwrap_or(DEFAULT_PART_MIB);
        if part_mib < MIN_PART_MIB {
            return Err(ObjectsError::PartSize(part_mib));
        }
        let https = placement.endpoint.starts_with("https://");
        let mut options = ClientOptions::new()
            .with_allow_http(!https)
            .with_connect_timeout(Duration::from_secs(5))
            // An endpoint that stops answering is given up on after 15 s of
            // silence; a slow one may take 5 minutes over a part.
            .with_read_timeout(Duration::from_secs(15))
            .with_timeout(Duration::from_secs(300));
        if let Some(path) = ca_file {
            let pem = std::fs::read(&path).map_err(|e| ObjectsError::Ca {
                path: path.clone(),
                why: e.to_string(),
            })?;
            let certificates = object_store::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ObjectsError::Ca {
                    path: path.clone(),
                    why: "holds no PEM certificate".into(),
                })?;
            for certificate in certificates {
                options = options.with_root_certificate(certificate);
            }
        }
        // A bounded wait: an unreachable endpoint answers the client with 451
        // within about half a minute (two attempts of 15 s), not after
        // object_store's three minutes.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(&placement.endpoint)
            .with_bucket_name(&placement.bucket)
            .with_region(&placement.region)
            .with_virtual_hosted_style_request(!placement.path_style)
            .with_access_key_id(&credentials.access_key)
            .with_secret_access_key(&credentials.secret_key)
            .with_client_options(options.clone())
            .with_retry(retry)
            // Over TLS the payload is already protected in transit: signing
            // it would hash every byte a second time (SHA-256, beside the
            // event's digest). Over plain HTTP the signature is its only check.
            .with_unsigned_payload(https);
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token);
        }
        let client_error = |e: object_store::Error| ObjectsError::Client {
            endpoint: placement.endpoint.clone(),
            why: e.to_string(),
        };
        let store = Arc::new(builder.build().map_err(client_error)?);
        let signed = signed::Signed::new(store.clone(), &options, &placement, !https)
            .map_err(client_error)?;
        Ok(Self {
            store,
            hint: credentials.hint(),
            part_size: (part_mib << 20) as usize,
            copy_max: DEFAULT_COPY_MAX_MIB << 20,
            signed,
            placement,
        })
    }

    /// Copies objects above `mib` MiB a range per part instead of in one
    /// CopyObject (`None`: AWS's 5 GiB).
    pub fn with_copy_max_mib(mut self, mib: Option<u64>) -> Result<Self, ObjectsError> {
        let mib = mib.unwrap_or(DEFAULT_COPY_MAX_MIB);
        if !(MIN_PART_MIB..=DEFAULT_COPY_MAX_MIB).contains(&mib) {
            return Err(ObjectsError::CopyMax(mib));
        }
        self.copy_max = mib << 20;
        Ok(self)
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// Proves at start-up that the bucket exists and takes writes from these
    /// credentials: a listing, then a multipart upload begun and aborted
    /// (nothing visible is left in the bucket).
    pub async fn probe(&self, node: u64) -> Result<(), ObjectsError> {
        let prefix = (!self.placement.prefix.is_empty()).then(|| recorded(&self.placement.prefix));
        self.store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| self.startup_error(e))?;
        let probe = self.key_of(&format!("/.wharf-probe-{node}"));
        let mut upload = self
            .store
            .put_multipart(&probe)
            .await
            .map_err(|e| self.startup_error(e))?;
        upload.abort().await.map_err(|e| self.startup_error(e))
    }

    fn startup_error(&self, e: object_store::Error) -> ObjectsError {
        let text = chain(&e);
        let endpoint = self.placement.endpoint.clone();
        let bucket = self.placement.bucket.clone();
        if text.contains("NoSuchBucket") {
            return ObjectsError::NoBucket { bucket, endpoint };
        }
        let refused = matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ]
        .iter()
        .any(|code| text.contains(code));
        if text.contains("certificate") {
            return ObjectsError::Tls {
                endpoint,
                why: text,
            };
        }
        if refused {
            return ObjectsError::Refused {
                endpoint,
                hint: self.hint.clone(),
                why: text,
            };
        }
        ObjectsError::Probe {
            endpoint,
            bucket,
            why: text,
        }
    }

    /// The key of a namespace path (`/alice/in/a.csv`): the prefix, then the
    /// path as it is. Names an object key cannot hold (control characters)
    /// are refused.
    pub fn key(&self, path: &str) -> Result<Key, FsError> {
        let raw = match self.placement.prefix.as_str() {
            "" => path.trim_start_matches('/').to_owned(),
            prefix => format!("{prefix}{path}"),
        };
        Key::parse(&raw).map_err(|_| {
            FsError::Unsupported("this name cannot be an object key (control characters)")
        })
    }

    fn key_of(&self, path: &str) -> Key {
        self.key(path).unwrap_or_else(|_| Key::from(path))
    }

    /// An object's failure as the client's reply sees it (451, with the
    /// reason in the log).
    pub fn failed(&self, what: &str, key: &str, e: object_store::Error) -> FsError {
        let why = match &e {
            object_store::Error::NotFound { .. } => {
                format!("{what} {key}: the object is missing from the bucket")
            }
            object_store::Error::Precondition { .. } => {
                format!("{what} {key}: the object was changed outside Wharf since it was stored")
            }
            _ => format!("{what} {key} at {}: {}", self.placement.endpoint, chain(&e)),
        };
        FsError::ObjectStorage(why)
    }

    fn attributes() -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, CONTENT_TYPE.into());
        attributes
    }

    /// Stores a whole small file in one request.
    pub async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<ObjectRef, FsError> {
        self.put_as(key, bytes, PutMode::Overwrite).await
    }

    /// As [`Objects::put`], only while the bucket has nothing at `key`
    /// (`If-None-Match: *`); else `Superseded`. What a PUT that cannot be
    /// fenced through Raft uses when it must not replace a newer upload.
    pub async fn put_new(&self, key: &Key, bytes: Vec<u8>) -> Result<ObjectRef, FsError> {
        self.put_as(key, bytes, PutMode::Create).await
    }

    /// As [`Objects::put`], only while the object at `key` is still the one
    /// with ETag `etag` (`If-Match`); else `Superseded`. The ETag goes
    /// without its quotes: Ceph 16 compares a PUT's `If-Match` only so.
    pub async fn put_over(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        etag: &str,
    ) -> Result<ObjectRef, FsError> {
        let version = UpdateVersion {
            e_tag: Some(etag.trim_matches('"').to_owned()),
            version: None,
        };
        self.put_as(key, bytes, PutMode::Update(version)).await
    }

    async fn put_as(&self, key: &Key, bytes: Vec<u8>, mode: PutMode) -> Result<ObjectRef, FsError> {
        let size = bytes.len() as u64;
        let conditional = !matches!(mode, PutMode::Overwrite);
        let put = self
            .store
            .put_opts(
                key,
                PutPayload::from(bytes),
                PutOptions {
                    mode,
                    attributes: Self::attributes(),
                    ..PutOptions::default()
                },
            )
            .await
            .map_err(|e| match e {
                object_store::Error::AlreadyExists { .. } => FsError::Superseded,
                object_store::Error::Precondition { .. } if conditional => FsError::Superseded,
                e => self.failed("storing", key.as_ref(), e),
            })?;
        Ok(ObjectRef {
            key: key.to_string(),
            etag: put.e_tag.unwrap_or_default(),
            size,
        })
    }

    /// Begins a multipart upload; its id lets any node add parts later.
    pub async fn create_multipart(&self, key: &Key) -> Result<String, FsError> {
        self.store
            .create_multipart_opts(
                key,
                PutMultipartOptions {
                    attributes: Self::attributes(),
                    ..PutMultipartOptions::default()
                },
            )
            .await
            .map_err(|e| self.failed("starting an upload of", key.as_ref(), e))
    }

    /// Sends part `index` (0-based) of multipart upload `id`; its ETag.
    pub async fn put_part(
        &self,
        key: &Key,
        id: &str,
        index: usize,
        bytes: Vec<u8>,
    ) -> Result<String, FsError> {
        let part = self
            .store
            .put_part(key, &id.to_owned(), index, PutPayload::from(bytes))
            .await
            .map_err(|e| self.failed("uploading a part of", key.as_ref(), e))?;
        Ok(part.content_id)
    }

    /// Completes multipart upload `id` from its parts' ETags, in order.
    pub async fn complete(
        &self,
        key: &Key,
        id: &str,
        etags: Vec<String>,
        size: u64,
    ) -> Result<ObjectRef, FsError> {
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        let put = self
            .store
            .complete_multipart(key, &id.to_owned(), parts)
            .await
            .map_err(|e| self.failed("completing", key.as_ref(), e))?;
        let etag = match put.e_tag.filter(|e| !e.is_empty()) {
            Some(etag) => etag,
            // Ceph 16 answers its first completion with an empty ETag: ask.
            None => self
                .store
                .head(key)
                .await
                .map_err(|e| self.failed("checking", key.as_ref(), e))?
                .e_tag
                .unwrap_or_default(),
        };
        Ok(ObjectRef {
            key: key.to_string(),
            etag,
            size,
        })
    }

    /// Discards multipart upload `id` and its parts; whether they are gone
    /// (a failure is logged).
    pub async fn abort(&self, key: &str, id: &str) -> bool {
        let path = recorded(key);
        match self.store.abort_multipart(&path, &id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                tracing::warn!(
                    key,
                    "discarding the parts of an upload failed (tried again later): {e}"
                );
                false
            }
        }
    }

    /// The object's bytes from `offset` to `end` (its end when `None`),
    /// streamed as they arrive; only the version recorded is served.
    pub async fn read(
        &self,
        object: &ObjectRef,
        offset: u64,
        end: Option<u64>,
    ) -> Result<FileReader, FsError> {
        match self.open(object, offset, end).await? {
            Opened::Bytes(bytes) => Ok(bytes),
            Opened::Replaced(..) => Err(FsError::ObjectStorage(format!(
                "reading {}: the object was changed outside Wharf since it was stored",
                object.key
            ))),
        }
    }

    /// As [`Objects::read`], but an object replaced at its key is not an
    /// error: the bucket's object (and its modification time) comes back
    /// for the caller to record.
    pub async fn open(
        &self,
        object: &ObjectRef,
        offset: u64,
        end: Option<u64>,
    ) -> Result<Opened, FsError> {
        let end = end.unwrap_or(object.size).min(object.size);
        let key = recorded(&object.key);
        if offset >= end {
            // No GET to carry If-Match (a zero-byte file, a read at its end):
            // a HEAD tells whether the object is still the one recorded.
            if end == object.size && !object.etag.is_empty() {
                let (current, modified) = self.current(object, &key).await?;
                if current.etag != object.etag {
                    return Ok(Opened::Replaced(current, modified));
                }
            }
            return Ok(Opened::Bytes(Box::new(tokio::io::empty())));
        }
        let options = GetOptions {
            range: Some(if end == object.size {
                GetRange::Offset(offset)
            } else {
                GetRange::Bounded(offset..end)
            }),
            if_match: (!object.etag.is_empty()).then(|| object.etag.clone()),
            ..GetOptions::default()
        };
        let got = match self.store.get_opts(&key, options).await {
            Ok(got) => got,
            Err(object_store::Error::Precondition { .. }) => {
                let (current, modified) = self.current(object, &key).await?;
                return Ok(Opened::Replaced(current, modified));
            }
            Err(e) => return Err(self.failed("reading", &object.key, e)),
        };
        let stream = got.into_stream().map_err(std::io::Error::other);
        Ok(Opened::Bytes(Box::new(tokio_util::io::StreamReader::new(
            stream,
        ))))
    }

    /// The object at `object`'s key now, and its modification time (Unix
    /// seconds).
    async fn current(&self, object: &ObjectRef, key: &Key) -> Result<(ObjectRef, u64), FsError> {
        let meta = self
            .store
            .head(key)
            .await
            .map_err(|e| self.failed("checking", &object.key, e))?;
        let current = ObjectRef {
            key: object.key.clone(),
            etag: meta.e_tag.unwrap_or_default(),
            size: meta.size,
        };
        let modified = u64::try_from(meta.last_modified.timestamp()).unwrap_or(0);
        Ok((current, modified))
    }

    /// Copies `object` to `to`, returning the copy as recorded. An object
    /// above the copy limit is copied a range per part, with `mtime` (the
    /// file's, Unix seconds) as its `x-amz-meta-mtime`; one CopyObject
    /// keeps whatever metadata the object has.
    pub async fn copy(
        &self,
        object: &ObjectRef,
        to: &Key,
        mtime: u64,
    ) -> Result<ObjectRef, FsError> {
        let from = recorded(&object.key);
        if object.size > self.copy_max {
            return self.copy_in_parts(object, &from, to, mtime).await;
        }
        self.store
            .copy(&from, to)
            .await
            .map_err(|e| self.failed("copying", &object.key, e))?;
        self.head(to).await
    }

    /// Gives `object` the modification time `mtime` (Unix seconds) as its
    /// `x-amz-meta-mtime`: a copy onto itself with its metadata replaced,
    /// only while it is the version recorded. The object as it is now
    /// (a copy has a new ETag).
    pub async fn set_mtime(&self, object: &ObjectRef, mtime: u64) -> Result<ObjectRef, FsError> {
        let key = recorded(&object.key);
        if object.size > self.copy_max {
            return self.copy_in_parts(object, &key, &key, mtime).await;
        }
        let etag = self
            .signed
            .copy_with_mtime(&key, &object.etag, &key, mtime)
            .await
            .map_err(|e| self.copy_failed("setting the time of", &object.key, e))?;
        match etag {
            Some(etag) => Ok(ObjectRef {
                etag,
                ..object.clone()
            }),
            None => self.head(&key).await,
        }
    }

    /// A multipart upload at `to` made of `object`'s bytes, a range of at
    /// least the copy limit per part, three parts in flight.
    async fn copy_in_parts(
        &self,
        object: &ObjectRef,
        from: &Key,
        to: &Key,
        mtime: u64,
    ) -> Result<ObjectRef, FsError> {
        let mut attributes = Self::attributes();
        attributes.insert(
            Attribute::Metadata("mtime".into()),
            mtime.to_string().into(),
        );
        let id = self
            .store
            .create_multipart_opts(
                to,
                PutMultipartOptions {
                    attributes,
                    ..PutMultipartOptions::default()
                },
            )
            .await
            .map_err(|e| self.failed("starting a copy of", &object.key, e))?;
        // Parts small enough for a slow store to copy each within the
        // request's timeouts; as many as S3 allows at most.
        let part = self
            .copy_max
            .min(COPY_PART)
            .max(object.size.div_ceil(MAX_PARTS));
        let copies = (0..object.size.div_ceil(part)).map(|index| {
            let range = index * part..((index + 1) * part).min(object.size);
            let id = &id;
            async move {
                self.signed
                    .copy_part(from, &object.etag, range, to, id, index as usize)
                    .await
            }
        });
        let etags = futures_util::stream::iter(copies)
            .buffered(PARTS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await;
        let copied = match etags {
            Ok(etags) => self.complete(to, &id, etags, object.size).await,
            Err(e) => Err(self.copy_failed("copying", &object.key, e)),
        };
        if copied.is_err() {
            // A failed abort leaves the parts to the bucket's lifecycle rule.
            self.abort(to.as_ref(), &id).await;
        }
        copied
    }

    fn copy_failed(&self, what: &str, key: &str, e: signed::SignedError) -> FsError {
        FsError::ObjectStorage(match e {
            signed::SignedError::Changed => {
                format!("{what} {key}: the object was changed outside Wharf since it was stored")
            }
            signed::SignedError::Missing => {
                format!("{what} {key}: the object is missing from the bucket")
            }
            signed::SignedError::Failed(why) => {
                format!("{what} {key} at {}: {why}", self.placement.endpoint)
            }
        })
    }

    /// The ETag of the object at `key` now (`None`: there is none).
    pub async fn etag_at(&self, key: &str) -> Result<Option<String>, FsError> {
        match self.store.head(&recorded(key)).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_default())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("checking", key, e)),
        }
    }

    /// The object at `key` as recorded.
    async fn head(&self, key: &Key) -> Result<ObjectRef, FsError> {
        let meta = self
            .store
            .head(key)
            .await
            .map_err(|e| self.failed("checking", key.as_ref(), e))?;
        Ok(ObjectRef {
            key: key.to_string(),
            etag: meta.e_tag.unwrap_or_default(),
            size: meta.size,
        })
    }

    /// Deletes `key`; whether it is gone (a failure is logged: the object
    /// stays in the bucket until a later try, the namespace is already right).
    pub async fn delete(&self, key: &str) -> bool {
        let path = recorded(key);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                tracing::warn!(
                    key,
                    "object left in the bucket for now: deleting it failed: {e}"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(prefix: &str) -> Objects {
        let placement = Placement {
            endpoint: "http://127.0.0.1:1".into(),
            bucket: "b".into(),
            prefix: prefix.into(),
            region: "us-east-1".into(),
            path_style: true,
        };
        let credentials = Credentials {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            session_token: None,
            source: "test".into(),
        };
        Objects::connect(placement, &credentials, None, None).unwrap()
    }

    #[test]
    fn keys_are_the_prefix_and_the_path_as_it_is() {
        let with = objects("wharf/files");
        assert_eq!(
            with.key("/alice/in/a b%#[1]~*?.csv").unwrap().as_ref(),
            "wharf/files/alice/in/a b%#[1]~*?.csv"
        );
        let without = objects("");
        assert_eq!(without.key("/alice/x").unwrap().as_ref(), "alice/x");
        assert!(matches!(
            without.key("/alice/bell\u{7}"),
            Err(FsError::Unsupported(_))
        ));
        // A recorded key reads back as the same key.
        let key = with.key("/alice/é ü [1].txt").unwrap();
        assert_eq!(recorded(key.as_ref()), key);
    }

    #[test]
    fn a_key_stands_for_the_path_it_was_made_from() {
        for prefix in ["", "wharf/files"] {
            let objects = objects(prefix);
            for path in ["/home/alice/in/a b.csv", "/x"] {
                let key = objects.key(path).unwrap();
                assert_eq!(objects.path_of(key.as_ref()).as_deref(), Some(path));
            }
        }
        // Keys beside the prefix are not the cluster's.
        let objects = objects("wharf/files");
        assert_eq!(objects.path_of("wharf/filesystem/a"), None);
        assert_eq!(objects.path_of("other/a"), None);
    }

    #[test]
    fn parts_below_five_mib_are_refused() {
        let placement = objects("").placement.clone();
        let credentials = Credentials {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            session_token: None,
            source: "test".into(),
        };
        assert!(matches!(
            Objects::connect(placement, &credentials, None, Some(4)),
            Err(ObjectsError::PartSize(4))
        ));
    }
}
