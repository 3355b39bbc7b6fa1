//! The `FileSystem` boundary (DESIGN.md §3): a user-rooted namespace. Paths come
//! in already normalised (`VirtualPath`); implementations keep them confined.

mod local;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::AsyncBufRead;
use wharf_ftp::{Entry, VirtualPath};

pub use local::LocalFs;

use crate::accounts::User;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("directory not empty")]
    NotEmpty,
    #[error("permission denied")]
    PermissionDenied,
    /// The path leaves the user's root (e.g. through a symlink).
    #[error("path is outside the home directory")]
    OutsideRoot,
    #[error("no space left on device")]
    NoSpace,
    #[error("invalid offset")]
    InvalidOffset,
    /// An upload can resume only where its durable part ends (object
    /// storage: a cut part cannot be read back), at this offset.
    #[error("resumable only at offset {0}")]
    ResumeAt(u64),
    /// The user's quota does not allow the write.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The file changed after this upload began (another upload of the same
    /// name finished first); the upload changed nothing.
    #[error("the file changed while this upload was running")]
    Superseded,
    /// The storage cannot take changes now (a cluster without a quorum).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The object store holding file contents failed or refused a request;
    /// nothing the request would have changed was committed.
    #[error("object storage: {0}")]
    ObjectStorage(String),
    /// What this storage cannot do, said to the client as it is.
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            NotFound => FsError::NotFound,
            AlreadyExists => FsError::AlreadyExists,
            PermissionDenied => FsError::PermissionDenied,
            NotADirectory => FsError::NotADirectory,
            IsADirectory => FsError::IsADirectory,
            DirectoryNotEmpty => FsError::NotEmpty,
            StorageFull => FsError::NoSpace,
            _ => match e.raw_os_error() {
                Some(libc::ELOOP) => FsError::OutsideRoot,
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => FsError::NoSpace,
                _ => FsError::Io(e),
            },
        }
    }
}

/// How an upload opens its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR: create or truncate.
    Truncate,
    /// APPE: create or append.
    Append,
    /// REST n + STOR: keep the first n bytes, write from there.
    At(u64),
    /// STOU: the name must not exist yet.
    CreateNew,
}

/// An upload in progress. Nothing is promised about its bytes until `commit`
/// returns: that is the point where an implementation makes them durable.
#[async_trait]
pub trait FileWriter: Send {
    async fn write(&mut self, buf: &[u8]) -> Result<(), FsError>;
    /// Makes everything written durable; returns the file's final size.
    async fn commit(self: Box<Self>) -> Result<u64, FsError>;
    /// `commit` for an upload whose data connection ended without TLS
    /// close_notify: its client may have been cut off, and its end may be
    /// recorded only after a newer upload of the same file. It must not
    /// replace a file that changed since it began (`Superseded`). Storage
    /// that writes in place, where the end is the last byte written, has
    /// nothing to fence.
    async fn commit_unconfirmed(self: Box<Self>) -> Result<u64, FsError> {
        self.commit().await
    }
}

/// A file's bytes from some offset on. Buffered reading: the transfer sends
/// straight from the reader's own buffer (a cluster file's chunk as fetched),
/// without copying it into one of its own first.
pub type FileReader = Box<dyn AsyncBufRead + Send + Unpin>;

/// A directory's entries in name order, a page at a time, so a listing of a
/// million entries never holds them all.
#[async_trait]
pub trait DirPages: Send {
    /// The next entries; `None` after the last.
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>, FsError>;
}

/// Entries already in hand, as one page.
pub struct OnePage(pub Option<Vec<Entry>>);

#[async_trait]
impl DirPages for OnePage {
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>, FsError> {
        Ok(self.0.take())
    }
}

#[async_trait]
pub trait FileSystem: Send + Sync {
    async fn metadata(&self, path: &VirtualPath) -> Result<Entry, FsError>;
    async fn list(&self, dir: &VirtualPath) -> Result<Vec<Entry>, FsError>;
    /// The directory's entries a page at a time (by default, `list` as one page).
    async fn list_pages(&self, dir: &VirtualPath) -> Result<Box<dyn DirPages>, FsError> {
        Ok(Box::new(OnePage(Some(self.list(dir).await?))))
    }
    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<FileReader, FsError>;
    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn FileWriter>, FsError>;
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError>;
    async fn delete(&self, path: &VirtualPath) -> Result<(), FsError>;
    async fn mkdir(&self, path: &VirtualPath) -> Result<(), FsError>;
    async fn rmdir(&self, path: &VirtualPath) -> Result<(), FsError>;
    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), FsError>;
}

/// Where users' files live: opens the file system a logged-in user sees,
/// rooted at their home (created on first login).
#[async_trait]
pub trait Storage: Send + Sync {
    async fn open_home(&self, user: &User, opener: &Opener)
        -> Result<Arc<dyn FileSystem>, FsError>;
}

/// The session opening a home, as a storage that records changes (events)
/// names their origin.
#[derive(Clone, Debug)]
pub struct Opener {
    /// This node's number for the session.
    pub session: u64,
    pub client: std::net::IpAddr,
}

/// Homes are directories on this node's disk (`LocalFs`), as in vsftpd.
pub struct LocalStorage;

#[async_trait]
impl Storage for LocalStorage {
    async fn open_home(&self, user: &User, _: &Opener) -> Result<Arc<dyn FileSystem>, FsError> {
        let home: &Path = &user.home;
        tokio::fs::create_dir_all(home).await?;
        Ok(Arc::new(LocalFs::new(home)?))
    }
}
