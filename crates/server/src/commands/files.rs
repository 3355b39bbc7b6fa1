//! Commands answered on the control connection alone: DELE RMD MKD RNFR RNTO
//! SIZE MDTM MFMT MLST HASH.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncBufReadExt;
use wharf_ftp::listing::{format_time, mlsx_line};
use wharf_ftp::reply::quote_path;
use wharf_ftp::{EntryKind, Facts, HashAlgorithm, Reply, VirtualPath};

use super::{permitted, resolve};
use crate::accounts::Permissions;
use crate::fs::FileSystem;
use crate::replies;
use crate::state::{LoggedIn, Navigation};

/// Resolves `arg` and checks the permission; the usual prologue.
fn target<'a>(
    login: &'a LoggedIn,
    nav: &Navigation,
    arg: &str,
    which: fn(&Permissions) -> bool,
) -> Result<(VirtualPath, &'a Arc<dyn FileSystem>), Reply> {
    let path = resolve(nav, arg)?;
    let fs = permitted(login, which)?;
    Ok((path, fs))
}

macro_rules! try_reply {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

pub async fn dele(login: &LoggedIn, nav: &Navigation, arg: &str) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg, |p| p.delete));
    match fs.delete(&path).await {
        Ok(()) => Reply::new(250, "File deleted."),
        Err(e) => replies::fs_error(&e),
    }
}

pub async fn rmd(login: &LoggedIn, nav: &Navigation, arg: &str) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg, |p| p.delete));
    if path.is_root() || nav.cwd.starts_with(&path) {
        return Reply::new(
            550,
            "Cannot remove the current directory or one of its parents.",
        );
    }
    match fs.rmdir(&path).await {
        Ok(()) => Reply::new(250, "Directory removed."),
        Err(e) => replies::fs_error(&e),
    }
}

pub async fn mkd(login: &LoggedIn, nav: &Navigation, arg: &str) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg, |p| p.mkdir));
    match fs.mkdir(&path).await {
        Ok(()) => Reply::new(257, format!("{} created.", quote_path(&path.as_string()))),
        Err(e) => replies::fs_error(&e),
    }
}

pub async fn rnfr(login: &LoggedIn, nav: &mut Navigation, arg: &str) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg, |p| p.rename));
    if path.is_root() {
        return replies::permission_denied();
    }
    match fs.metadata(&path).await {
        Ok(_) => {
            nav.rename_from = Some(path);
            Reply::new(350, "Ready for RNTO.")
        }
        Err(e) => replies::fs_error(&e),
    }
}

pub async fn rnto(login: &LoggedIn, nav: &mut Navigation, arg: &str) -> Reply {
    let Some(from) = nav.rename_from.take() else {
        return Reply::new(503, "Send RNFR first.");
    };
    let (to, fs) = try_reply!(target(login, nav, arg, |p| p.rename));
    match fs.rename(&from, &to).await {
        Ok(()) => Reply::new(250, "Rename successful."),
        Err(e) => replies::fs_error(&e),
    }
}

async fn file_entry(
    login: &LoggedIn,
    nav: &Navigation,
    arg: &str,
) -> Result<wharf_ftp::Entry, Reply> {
    let (path, fs) = target(login, nav, arg, |p| p.list || p.read)?;
    match fs.metadata(&path).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => Err(Reply::new(550, "Not a plain file.")),
        Ok(e) => Ok(e),
        Err(e) => Err(replies::fs_error(&e)),
    }
}

pub async fn size(login: &LoggedIn, nav: &Navigation, arg: &str) -> Reply {
    let entry = try_reply!(file_entry(login, nav, arg).await);
    Reply::new(213, entry.size.to_string())
}

pub async fn mdtm(login: &LoggedIn, nav: &Navigation, arg: &str) -> Reply {
    let entry = try_reply!(file_entry(login, nav, arg).await);
    Reply::new(213, format_time(entry.modified))
}

pub async fn mfmt(login: &LoggedIn, nav: &Navigation, time: SystemTime, arg: &str) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg, |p| p.write));
    match fs.set_modified(&path, time).await {
        Ok(()) => Reply::new(213, format!("Modify={}; {}", format_time(time), path)),
        Err(e) => replies::fs_error(&e),
    }
}

pub async fn mlst(login: &LoggedIn, nav: &Navigation, facts: &Facts, arg: Option<&str>) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg.unwrap_or(""), |p| p.list));
    match fs.metadata(&path).await {
        Ok(entry) => Reply::multi(
            250,
            vec![
                format!("Listing {path}"),
                mlsx_line(&entry, facts, Some(&path.as_string())),
                "End".into(),
            ],
        ),
        Err(e) => replies::fs_error(&e),
    }
}

/// HASH (draft-bryan-ftpext-hash-02): `213 ALGO START-END VALUE NAME`, with
/// the algorithm OPTS HASH selected.
pub async fn hash(
    login: &LoggedIn,
    nav: &Navigation,
    algorithm: HashAlgorithm,
    arg: &str,
) -> Reply {
    let (path, fs) = try_reply!(target(login, nav, arg, |p| p.read));
    let entry = match fs.metadata(&path).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => return Reply::new(550, "Not a plain file."),
        Ok(e) => e,
        Err(e) => return replies::fs_error(&e),
    };
    let mut reader = match fs.open_read(&path, 0).await {
        Ok(r) => r,
        Err(e) => return replies::fs_error(&e),
    };
    let mut digest = Digest::new(algorithm);
    loop {
        match reader.fill_buf().await {
            Ok([]) => break,
            Ok(bytes) => {
                let n = bytes.len();
                digest.update(bytes);
                reader.consume(n);
            }
            Err(e) => return replies::fs_error(&e.into()),
        }
    }
    Reply::new(
        213,
        format!(
            "{} 0-{} {} {}",
            algorithm.name(),
            entry.size,
            digest.finish(),
            path
        ),
    )
}

enum Digest {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Digest {
    fn new(algorithm: HashAlgorithm) -> Self {
        use sha2::Digest as _;
        match algorithm {
            HashAlgorithm::Sha256 => Digest::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha1 => Digest::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Md5 => Digest::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => Digest::Crc32(crc32fast::Hasher::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Digest::Sha256(d) => d.update(bytes),
            Digest::Sha1(d) => d.update(bytes),
            Digest::Md5(d) => d.update(bytes),
            Digest::Crc32(d) => d.update(bytes),
        }
    }

    fn finish(self) -> String {
        use sha2::Digest as _;
        match self {
            Digest::Sha256(d) => hex::encode(d.finalize()),
            Digest::Sha1(d) => hex::encode(d.finalize()),
            Digest::Md5(d) => hex::encode(d.finalize()),
            Digest::Crc32(d) => format!("{:08x}", d.finalize()),
        }
    }
}
