//! `LocalFs`: one directory on local disk per user, as vsftpd's chroot.
//!
//! Confinement: every path is mapped below the root and then checked after the
//! kernel resolved symlinks (`canonicalize`), so a symlink inside the home that
//! points elsewhere is refused. Files are opened with `O_NOFOLLOW` so a symlink
//! swapped in between check and open is refused too.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use wharf_ftp::{Entry, EntryKind, VirtualPath};

use super::{FileReader, FileSystem, FileWriter, FsError, WriteMode};

/// How much of a file one read from disk brings in.
const READ_BUFFER: usize = 256 * 1024;

pub struct LocalFs {
    root: PathBuf,
}

impl LocalFs {
    /// `root` must exist; it is canonicalised once here.
    pub fn new(root: &Path) -> Result<Self, FsError> {
        Ok(Self {
            root: std::fs::canonicalize(root)?,
        })
    }

    fn unchecked(&self, path: &VirtualPath) -> PathBuf {
        let mut real = self.root.clone();
        for c in path.components() {
            real.push(c);
        }
        real
    }

    /// The real path of something that must exist, symlinks resolved and
    /// confined.
    async fn existing(&self, path: &VirtualPath) -> Result<PathBuf, FsError> {
        let real = tokio::fs::canonicalize(self.unchecked(path)).await?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(FsError::OutsideRoot)
        }
    }

    /// The real path of an entry that may not exist yet: its parent must exist
    /// inside the root, and the entry itself must not be a symlink.
    async fn entry(&self, path: &VirtualPath) -> Result<PathBuf, FsError> {
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) => (p, n.to_owned()),
            _ => return Err(FsError::PermissionDenied), // the root itself
        };
        let real = self.existing(&parent).await?.join(name);
        match tokio::fs::symlink_metadata(&real).await {
            Ok(m) if m.file_type().is_symlink() => Err(FsError::OutsideRoot),
            _ => Ok(real),
        }
    }

    fn to_entry(&self, name: String, meta: &std::fs::Metadata) -> Entry {
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        let perm = match kind {
            EntryKind::Dir => "flcdmpe",
            _ => "adfrw",
        };
        Entry {
            name,
            kind,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            mode: meta.mode() & 0o7777,
            nlink: meta.nlink(),
            unique: format!("{:x}g{:x}", meta.dev(), meta.ino()),
            perm: perm.to_owned(),
        }
    }
}

#[async_trait]
impl FileSystem for LocalFs {
    async fn metadata(&self, path: &VirtualPath) -> Result<Entry, FsError> {
        let real = self.existing(path).await?;
        let meta = tokio::fs::metadata(&real).await?;
        let name = path.file_name().unwrap_or("/").to_owned();
        Ok(self.to_entry(name, &meta))
    }

    async fn list(&self, dir: &VirtualPath) -> Result<Vec<Entry>, FsError> {
        let real = self.existing(dir).await?;
        if !tokio::fs::metadata(&real).await?.is_dir() {
            return Err(FsError::NotADirectory);
        }
        let mut reader = tokio::fs::read_dir(&real).await?;
        let mut entries = Vec::new();
        while let Some(item) = reader.next_entry().await? {
            let Ok(name) = item.file_name().into_string() else {
                continue; // not UTF-8: not addressable over FTP with UTF8 on
            };
            let path = item.path();
            // Symlinks are listed only when they resolve inside the root.
            let meta = match tokio::fs::canonicalize(&path).await {
                Ok(target) if target.starts_with(&self.root) => {
                    match tokio::fs::metadata(&target).await {
                        Ok(m) => m,
                        Err(_) => continue,
                    }
                }
                _ => continue,
            };
            entries.push(self.to_entry(name, &meta));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<FileReader, FsError> {
        let real = self.existing(path).await?;
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .await?;
        let meta = file.metadata().await?;
        if meta.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if offset > meta.len() {
            return Err(FsError::InvalidOffset);
        }
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset)).await?;
        }
        Ok(Box::new(tokio::io::BufReader::with_capacity(
            READ_BUFFER,
            file,
        )))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Box<dyn FileWriter>, FsError> {
        let real = self.entry(path).await?;
        let mut options = tokio::fs::OpenOptions::new();
        options
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW);
        match mode {
            WriteMode::Truncate => options.create(true).truncate(true),
            WriteMode::Append => options.create(true).append(true),
            WriteMode::At(_) => options.create(true),
            WriteMode::CreateNew => options.create_new(true),
        };
        let mut file = options.open(&real).await?;
        if file.metadata().await?.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if let WriteMode::At(offset) = mode {
            let len = file.metadata().await?.len();
            if offset > len {
                return Err(FsError::InvalidOffset);
            }
            // Resume semantics (vsftpd, ProFTPD): the file ends where the
            // client resumes, so a shorter resumed upload leaves no stale tail.
            file.set_len(offset).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
        }
        Ok(Box::new(LocalWriter {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
        }))
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        let source = self.entry(from).await?;
        tokio::fs::symlink_metadata(&source).await?;
        let target = self.entry(to).await?;
        if target.starts_with(&source) && target != source {
            // Moving a directory into itself.
            return Err(FsError::PermissionDenied);
        }
        Ok(tokio::fs::rename(&source, &target).await?)
    }

    async fn delete(&self, path: &VirtualPath) -> Result<(), FsError> {
        let real = self.entry(path).await?;
        if tokio::fs::metadata(&real).await?.is_dir() {
            return Err(FsError::IsADirectory);
        }
        Ok(tokio::fs::remove_file(&real).await?)
    }

    async fn mkdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        let real = self.entry(path).await?;
        Ok(tokio::fs::create_dir(&real).await?)
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), FsError> {
        let real = self.entry(path).await?;
        Ok(tokio::fs::remove_dir(&real).await?)
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<(), FsError> {
        let real = self.existing(path).await?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .or_else(|_| std::fs::File::open(&real))?;
        tokio::task::spawn_blocking(move || file.set_modified(time))
            .await
            .map_err(|e| FsError::Io(std::io::Error::other(e)))??;
        Ok(())
    }
}

struct LocalWriter {
    file: tokio::io::BufWriter<tokio::fs::File>,
}

#[async_trait]
impl FileWriter for LocalWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), FsError> {
        Ok(self.file.write_all(buf).await?)
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, FsError> {
        self.file.flush().await?;
        let file = self.file.get_mut();
        file.sync_all().await?;
        Ok(file.metadata().await?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    struct Fixture {
        _dir: tempfile::TempDir,
        home: PathBuf,
        outside: PathBuf,
        fs: LocalFs,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        let fs = LocalFs::new(&home).unwrap();
        Fixture {
            _dir: dir,
            home,
            outside,
            fs,
        }
    }

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().resolve(s).unwrap()
    }

    async fn write(
        fs: &LocalFs,
        path: &str,
        mode: WriteMode,
        bytes: &[u8],
    ) -> Result<u64, FsError> {
        let mut w = fs.open_write(&vp(path), mode).await?;
        w.write(bytes).await?;
        w.commit().await
    }

    #[tokio::test]
    async fn symlink_to_outside_is_neither_read_nor_listed_nor_written_through() {
        let f = fixture();
        std::os::unix::fs::symlink(&f.outside, f.home.join("escape")).unwrap();
        std::os::unix::fs::symlink(f.outside.join("secret"), f.home.join("secret-link")).unwrap();
        assert!(matches!(
            f.fs.open_read(&vp("/escape/secret"), 0).await,
            Err(FsError::OutsideRoot)
        ));
        assert!(matches!(
            f.fs.open_read(&vp("/secret-link"), 0).await,
            Err(FsError::OutsideRoot)
        ));
        assert!(matches!(
            f.fs.list(&vp("/escape")).await,
            Err(FsError::OutsideRoot)
        ));
        assert!(write(&f.fs, "/escape/new", WriteMode::Truncate, b"x")
            .await
            .is_err());
        assert!(write(&f.fs, "/secret-link", WriteMode::Truncate, b"x")
            .await
            .is_err());
        assert!(f.fs.delete(&vp("/escape/secret")).await.is_err());
        assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), b"secret");
        assert!(!f.outside.join("new").exists());
        let names: Vec<_> =
            f.fs.list(&VirtualPath::root())
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
        assert!(
            names.is_empty(),
            "links leading outside must not be listed: {names:?}"
        );
    }

    #[tokio::test]
    async fn dangling_symlink_is_not_followed_when_creating() {
        let f = fixture();
        std::os::unix::fs::symlink(f.outside.join("created"), f.home.join("dangling")).unwrap();
        assert!(write(&f.fs, "/dangling", WriteMode::Truncate, b"x")
            .await
            .is_err());
        assert!(!f.outside.join("created").exists());
    }

    #[tokio::test]
    async fn resume_at_offset_keeps_prefix_and_drops_stale_tail() {
        let f = fixture();
        write(&f.fs, "/a", WriteMode::Truncate, b"0123456789")
            .await
            .unwrap();
        assert_eq!(
            write(&f.fs, "/a", WriteMode::At(4), b"xy").await.unwrap(),
            6
        );
        assert_eq!(std::fs::read(f.home.join("a")).unwrap(), b"0123xy");
        assert!(matches!(
            write(&f.fs, "/a", WriteMode::At(100), b"z").await,
            Err(FsError::InvalidOffset)
        ));
        assert_eq!(
            write(&f.fs, "/a", WriteMode::Append, b"!").await.unwrap(),
            7
        );
    }

    #[tokio::test]
    async fn read_from_offset_returns_the_tail() {
        let f = fixture();
        write(&f.fs, "/b", WriteMode::Truncate, b"hello world")
            .await
            .unwrap();
        let mut r = f.fs.open_read(&vp("/b"), 6).await.unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "world");
    }

    #[tokio::test]
    async fn create_new_refuses_existing_names() {
        let f = fixture();
        write(&f.fs, "/c", WriteMode::CreateNew, b"1")
            .await
            .unwrap();
        assert!(matches!(
            write(&f.fs, "/c", WriteMode::CreateNew, b"2").await,
            Err(FsError::AlreadyExists)
        ));
    }

    #[tokio::test]
    async fn directory_cannot_be_moved_into_itself_and_root_is_not_removable() {
        let f = fixture();
        f.fs.mkdir(&vp("/d")).await.unwrap();
        assert!(f.fs.rename(&vp("/d"), &vp("/d/e")).await.is_err());
        assert!(f.fs.rmdir(&VirtualPath::root()).await.is_err());
        f.fs.rename(&vp("/d"), &vp("/e")).await.unwrap();
        assert!(f.home.join("e").is_dir());
    }
}
