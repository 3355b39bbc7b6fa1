//! Commands that move bytes over a data connection: RETR STOR APPE STOU LIST
//! NLST MLSD, and REST which prepares them.

use std::time::SystemTime;

use wharf_ftp::listing::{list_line, mlsx_line};
use wharf_ftp::{EntryKind, Reply, VirtualPath};

use super::{permitted, resolve};
use crate::data::listing;
use crate::data::transfer::{Payload, TransferJob, UploadTarget};
use crate::data::DataSetup;
use crate::fs::{DirPages, FileSystem, OnePage};
use crate::fs::{FsError, WriteMode};
use crate::replies;
use crate::state::{DataChannel, LoggedIn, Navigation, Outcome, PendingTransfer, TransferSettings};
use crate::xferlog::Direction;
use crate::Shared;

pub fn rest(settings: &mut TransferSettings, offset: u64) -> Reply {
    settings.rest = offset;
    Reply::new(
        350,
        format!("Restarting at {offset}. Send STOR or RETR to initiate transfer."),
    )
}

/// Checks shared by every data transfer; returns the data set-up to use.
fn prepare(
    shared: &Shared,
    settings: &TransferSettings,
    data: &mut DataChannel,
) -> Result<DataSetup, Reply> {
    let policy = &shared.config.policy;
    if policy.require_prot_p && !settings.private() {
        return Err(Reply::new(
            521,
            "Data connections must be encrypted: send PBSZ 0 and PROT P first.",
        ));
    }
    data.setup
        .take()
        .ok_or_else(|| Reply::new(425, "Use PASV, EPSV, PORT or EPRT first."))
}

/// The transfer for the loop to start, at the user's rate for `direction`.
/// Directory listings are not logged as transfers.
fn pending(
    login: &LoggedIn,
    settings: &TransferSettings,
    payload: Payload,
    setup: DataSetup,
    opening: String,
    path: &VirtualPath,
    direction: Direction,
) -> Outcome {
    let rate = match direction {
        Direction::Incoming => login.user.upload_rate,
        Direction::Outgoing => login.user.download_rate,
    };
    let logged = !matches!(payload, Payload::Listing(_));
    let mode = if settings.ascii() { "ASCII" } else { "BINARY" };
    Outcome::Transfer(Box::new(PendingTransfer {
        job: TransferJob {
            payload,
            setup,
            opening: Reply::new(
                150,
                format!("Opening {mode} mode data connection for {opening}."),
            ),
            rate,
        },
        path: path.as_string(),
        direction,
        logged,
    }))
}

pub async fn retr(
    shared: &Shared,
    login: &LoggedIn,
    nav: &Navigation,
    settings: &mut TransferSettings,
    data: &mut DataChannel,
    arg: &str,
) -> Outcome {
    let offset = std::mem::take(&mut settings.rest);
    let path = match resolve(nav, arg) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let fs = match permitted(login, |p| p.read) {
        Ok(fs) => fs.clone(),
        Err(r) => return r.into(),
    };
    let setup = match prepare(shared, settings, data) {
        Ok(d) => d,
        Err(r) => return r.into(),
    };
    // The size announced is the file's once open: opening may find (and
    // record) that its object in the bucket was replaced.
    let reader = match fs.open_read(&path, offset).await {
        Ok(r) => r,
        Err(e) => return replies::fs_error(&e).into(),
    };
    let size = match fs.metadata(&path).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => {
            return Reply::new(550, "Is a directory.").into()
        }
        Ok(e) => e.size,
        Err(e) => return replies::fs_error(&e).into(),
    };
    let ascii = settings.ascii();
    let what = format!("{} ({} bytes)", path, size.saturating_sub(offset));
    pending(
        login,
        settings,
        Payload::Download { reader, ascii },
        setup,
        what,
        &path,
        Direction::Outgoing,
    )
}

pub async fn stor(
    shared: &Shared,
    login: &LoggedIn,
    nav: &Navigation,
    settings: &mut TransferSettings,
    data: &mut DataChannel,
    arg: &str,
    append: bool,
) -> Outcome {
    let offset = std::mem::take(&mut settings.rest);
    let path = match resolve(nav, arg) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let fs = match permitted(login, |p| p.write) {
        Ok(fs) => fs.clone(),
        Err(r) => return r.into(),
    };
    let setup = match prepare(shared, settings, data) {
        Ok(d) => d,
        Err(r) => return r.into(),
    };
    let mode = match (append, offset) {
        (true, _) => WriteMode::Append,
        (false, 0) => WriteMode::Truncate,
        (false, n) => WriteMode::At(n),
    };
    // Refuse what will certainly fail before the client opens a data
    // connection; the file itself is opened once the connection is verified.
    let resume_at = if append { 0 } else { offset };
    if let Err(r) = check_upload_target(fs.as_ref(), &path, resume_at).await {
        return r.into();
    }
    let ascii = settings.ascii();
    let what = path.to_string();
    let target = UploadTarget::Deferred {
        fs,
        path: path.clone(),
        mode,
    };
    pending(
        login,
        settings,
        Payload::Upload { target, ascii },
        setup,
        what,
        &path,
        Direction::Incoming,
    )
}

pub async fn stou(
    shared: &Shared,
    login: &LoggedIn,
    nav: &Navigation,
    settings: &mut TransferSettings,
    data: &mut DataChannel,
    hint: Option<&str>,
) -> Outcome {
    settings.rest = 0;
    let fs = match permitted(login, |p| p.write) {
        Ok(fs) => fs.clone(),
        Err(r) => return r.into(),
    };
    let base = hint
        .and_then(|h| nav.cwd.resolve(h).ok())
        .and_then(|p| p.file_name().map(str::to_owned))
        .unwrap_or_else(|| "wharf".to_owned());
    let setup = match prepare(shared, settings, data) {
        Ok(d) => d,
        Err(r) => return r.into(),
    };
    for attempt in 0..100u32 {
        let name = if attempt == 0 && hint.is_some() {
            base.clone()
        } else {
            format!("{base}.{}", unique_suffix(attempt))
        };
        let Ok(path) = nav.cwd.join(&name) else {
            return Reply::new(553, "Cannot build a unique file name from that hint.").into();
        };
        match fs.open_write(&path, WriteMode::CreateNew).await {
            Ok(writer) => {
                let ascii = settings.ascii();
                let mut outcome = pending(
                    login,
                    settings,
                    Payload::Upload {
                        target: UploadTarget::Opened(writer),
                        ascii,
                    },
                    setup,
                    name.clone(),
                    &path,
                    Direction::Incoming,
                );
                if let Outcome::Transfer(p) = &mut outcome {
                    // RFC 1123 4.1.2.9: the reply names the file created.
                    p.job.opening = Reply::new(150, format!("FILE: {name}"));
                }
                return outcome;
            }
            Err(FsError::AlreadyExists) => continue,
            Err(e) => return replies::fs_error(&e).into(),
        }
    }
    Reply::new(450, "Could not find a unique file name; try again.").into()
}

fn unique_suffix(attempt: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{attempt}", nanos ^ rand::random::<u32>())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ListingKind {
    List,
    Nlst,
    Mlsd,
}

pub async fn listing(
    shared: &Shared,
    login: &LoggedIn,
    nav: &Navigation,
    settings: &mut TransferSettings,
    data: &mut DataChannel,
    arg: Option<&str>,
    kind: ListingKind,
) -> Outcome {
    settings.rest = 0;
    let path = match resolve(nav, arg.unwrap_or("")) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let fs = match permitted(login, |p| p.list) {
        Ok(fs) => fs.clone(),
        Err(r) => return r.into(),
    };
    let pages: Box<dyn DirPages> = match fs.metadata(&path).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => match fs.list_pages(&path).await {
            Ok(pages) => pages,
            Err(e) => return replies::fs_error(&e).into(),
        },
        // MLSD is for directories only (RFC 3659 7.2); LIST and NLST of a file
        // show that file.
        Ok(_) if kind == ListingKind::Mlsd => {
            return Reply::new(501, "MLSD needs a directory; use MLST for a file.").into()
        }
        Ok(e) => Box::new(OnePage(Some(vec![e]))),
        Err(e) => return replies::fs_error(&e).into(),
    };
    let setup = match prepare(shared, settings, data) {
        Ok(d) => d,
        Err(r) => return r.into(),
    };
    let now = SystemTime::now();
    let facts = settings.facts;
    let lines = listing::lines(pages, move |e| match kind {
        ListingKind::List => list_line(e, now),
        ListingKind::Nlst => e.name.replace(['\r', '\n'], " "),
        ListingKind::Mlsd => mlsx_line(e, &facts, None),
    });
    let what = format!("listing of {path}");
    pending(
        login,
        settings,
        Payload::Listing(lines),
        setup,
        what,
        &path,
        Direction::Outgoing,
    )
}

async fn check_upload_target(
    fs: &dyn FileSystem,
    path: &VirtualPath,
    offset: u64,
) -> Result<(), Reply> {
    let parent = path.parent().ok_or_else(replies::permission_denied)?;
    match fs.metadata(&parent).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => {}
        Ok(_) => return Err(Reply::new(550, "Not a directory.")),
        Err(e) => return Err(replies::fs_error(&e)),
    }
    match fs.metadata(path).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => Err(Reply::new(550, "Is a directory.")),
        Ok(e) if offset > e.size => Err(replies::fs_error(&FsError::InvalidOffset)),
        Err(FsError::NotFound) if offset > 0 => Err(replies::fs_error(&FsError::InvalidOffset)),
        Ok(_) | Err(FsError::NotFound) => Ok(()),
        Err(e) => Err(replies::fs_error(&e)),
    }
}
