//! Replies shared by several commands, worded for an operator reading a log.

use wharf_ftp::{PathError, Reply};

use crate::fs::FsError;

pub fn fs_error(e: &FsError) -> Reply {
    match e {
        FsError::NotFound => Reply::new(550, "No such file or directory."),
        FsError::AlreadyExists => Reply::new(550, "File exists."),
        FsError::NotADirectory => Reply::new(550, "Not a directory."),
        FsError::IsADirectory => Reply::new(550, "Is a directory."),
        FsError::NotEmpty => Reply::new(550, "Directory not empty."),
        FsError::PermissionDenied | FsError::OutsideRoot => Reply::new(550, "Permission denied."),
        FsError::NoSpace => Reply::new(452, "Insufficient storage space on the server."),
        FsError::QuotaExceeded => Reply::new(
            552,
            "Requested file action aborted: exceeded your storage quota.",
        ),
        FsError::InvalidOffset => Reply::new(
            554,
            "Invalid REST offset: it lies beyond the end of the file.",
        ),
        FsError::ResumeAt(offset) => Reply::new(
            554,
            format!("Invalid REST offset: this upload resumes only at offset {offset} (its SIZE)."),
        ),
        FsError::Superseded => Reply::new(
            451,
            "Requested action aborted: the file changed while this upload was running; nothing was stored.",
        ),
        FsError::Unavailable(why) => {
            tracing::warn!("storage unavailable: {why}");
            Reply::new(
                451,
                "Requested action aborted: the cluster cannot accept changes now; try again later.",
            )
        }
        FsError::ObjectStorage(why) => {
            tracing::warn!("object storage: {why}");
            Reply::new(
                451,
                "Requested action aborted: the object storage failed; nothing was changed. Try again later.",
            )
        }
        FsError::Unsupported(what) => Reply::new(550, format!("Not possible here: {what}.")),
        FsError::Io(err) => {
            tracing::warn!("file system error: {err}");
            Reply::new(451, "Local error in processing; see the server log.")
        }
    }
}

pub fn path_error(e: &PathError) -> Reply {
    match e {
        PathError::NulByte => Reply::new(550, "Permission denied: path contains a NUL byte."),
        PathError::AboveRoot => Reply::new(
            550,
            "Permission denied: path leads above your home directory.",
        ),
        PathError::TooLong | PathError::ComponentTooLong => Reply::new(550, "Path too long."),
        PathError::InvalidName => Reply::new(553, "File name not allowed."),
    }
}

pub fn permission_denied() -> Reply {
    Reply::new(550, "Permission denied.")
}

pub fn not_logged_in() -> Reply {
    Reply::new(530, "Please log in with USER and PASS first.")
}
