//! Local storage (homes on this node's disk, as in vsftpd) whose changes are
//! announced like the cluster file system's. The change is made on disk
//! first, then its event is committed through the cluster (`Happened`)
//! before the client gets its reply, so every acknowledged upload has its
//! event. The two are not one log entry here: a node that dies between them
//! loses the event of a change whose reply never went out, which the client
//! then repeats; an event that cannot be committed fails the reply
//! (`451`), though the change stays on disk.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use wharf_cluster::ClusterHandle;
use wharf_ftp::{Entry, VirtualPath};
use wharf_server::accounts::User;
use wharf_server::fs::{
    DirPages, FileReader, FileSystem, FileWriter, FsError, LocalStorage, Opener, Storage, WriteMode,
};
use wharf_store::events::{EventKind, Origin};
use wharf_store::{FsCommand, Happened};

use crate::clock::unix_now_ms;
use crate::cluster_fs::{new_upload_id, outcome, write};
use crate::events::ContentDigest;

/// `--storage local` with events.
pub struct AnnouncedLocalStorage {
    pub node: Arc<ClusterHandle>,
}

#[async_trait]
impl Storage for AnnouncedLocalStorage {
    async fn open_home(
        &self,
        user: &User,
        opener: &Opener,
    ) -> Result<Arc<dyn FileSystem>, FsError> {
        let inner = LocalStorage.open_home(user, opener).await?;
        let node_id = self.node.node_id();
        Ok(Arc::new(AnnouncedFs {
            inner,
            announcer: Announcer {
                node: self.node.clone(),
                origin: Origin {
                    user: user.name.clone(),
                    node: node_id,
                    session: format!("{node_id}-{}", opener.session),
                    client: opener.client.to_string(),
                    ..Origin::default()
                },
            },
        }))
    }
}

/// Commits the events of one session's changes.
#[derive(Clone)]
struct Announcer {
    node: Arc<ClusterHandle>,
    /// Paths are the user's own: `home` stays empty.
    origin: Origin,
}

impl Announcer {
    async fn announce(&self, kind: EventKind) -> Result<(), FsError> {
        let origin = Origin {
            time_ms: unix_now_ms(),
            ..self.origin.clone()
        };
        let happened = FsCommand::Happened(Box::new(Happened { origin, kind }));
        outcome(write(&self.node, happened).await?)
    }
}

struct AnnouncedFs {
    inner: Arc<dyn FileSystem>,
    announcer: Announcer,
}

#[async_trait]
impl FileSystem for AnnouncedFs {
    async fn metadata(&self, path: &VirtualPath) -> Result<Entry, FsError> {
        self.inner.metadata(path).await
    }

    async fn list(&self, dir: &VirtualPath) -> Result<Vec<Entry>, FsError> {
        self.inner.list(dir).await
    }

    async fn list_pages(&self, dir: &VirtualPath) -> Result<Box<dyn DirPages>, FsError> {
        self.inner.list_pages(dir).await
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<FileReader, FsError> {
        self.inner.open_read(path, offset).await
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn FileWriter>, FsError> {
        let existing = match self.inner.metadata(path).await {
            Ok(entry) => Some(entry.size),
            Err(FsError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let kept = match mode {
            WriteMode::Truncate | WriteMode::CreateNew => 0,
            WriteMode::Append => existing.unwrap_or(0),
            WriteMode::At(offset) => offset,
        };
        let inner = self.inner.open_write(path, mode).await?;
        // The digest covers the bytes the upload keeps: read once per
        // resumption or append.
        let mut digest = ContentDigest::new(
            self.announcer
                .node
                .reader()
                .event_digest()
                .unwrap_or_default(),
        );
        if kept > 0 && digest.wanted() {
            let mut head = self.inner.open_read(path, 0).await?.take(kept);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = head.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                digest.update(buf.get(..n).unwrap_or_default());
            }
        }
        Ok(Box::new(AnnouncedUpload {
            inner,
            digest,
            fs: self.inner.clone(),
            path: path.clone(),
            replaced: existing.is_some() && mode == WriteMode::Truncate,
            announcer: self.announcer.clone(),
        }))
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        self.inner.rename(from, to).await?;
        self.announcer
            .announce(EventKind::FileRenamed {
                from: from.as_string(),
                to: to.as_string(),
            })
            .await
    }

    async fn delete(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.inner.delete(path).await?;
        self.announcer
            .announce(EventKind::FileDeleted {
                path: path.as_string(),
            })
            .await
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.inner.mkdir(path).await?;
        self.announcer
            .announce(EventKind::DirCreated {
                path: path.as_string(),
            })
            .await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.inner.rmdir(path).await?;
        self.announcer
            .announce(EventKind::DirRemoved {
                path: path.as_string(),
            })
            .await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), FsError> {
        self.inner.set_modified(path, time).await
    }
}

/// An upload to a local file, hashed as it is written. Dropped without
/// `commit` (the client went away), the file keeps what arrived and nothing
/// is announced, as on cluster storage.
struct AnnouncedUpload {
    inner: Box<dyn FileWriter>,
    digest: ContentDigest,
    fs: Arc<dyn FileSystem>,
    path: VirtualPath,
    replaced: bool,
    announcer: Announcer,
}

#[async_trait]
impl FileWriter for AnnouncedUpload {
    async fn write(&mut self, buf: &[u8]) -> Result<(), FsError> {
        self.inner.write(buf).await?;
        self.digest.update(buf);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<u64, FsError> {
        let Self {
            inner,
            digest,
            fs,
            path,
            replaced,
            announcer,
        } = *self;
        let size = inner.commit().await?;
        let mtime = fs
            .metadata(&path)
            .await
            .ok()
            .and_then(|e| e.modified.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        announcer
            .announce(EventKind::FileUploaded {
                path: path.as_string(),
                size,
                sha256: digest.hex(),
                mtime,
                replaced,
                upload: new_upload_id(),
            })
            .await?;
        Ok(size)
    }
}
