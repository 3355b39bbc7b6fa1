//! CWD CDUP PWD.

use wharf_ftp::reply::quote_path;
use wharf_ftp::{EntryKind, Reply};

use super::{permitted, resolve};
use crate::replies;
use crate::session::Session;

pub async fn cwd(s: &mut Session, arg: &str) -> Reply {
    let target = match resolve(s, arg) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let login = match permitted(s, |p| p.list || p.read || p.write) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match login.fs.metadata(&target).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => {
            let reply = Reply::new(250, format!("Directory changed to {target}."));
            s.cwd = target;
            reply
        }
        Ok(_) => Reply::new(550, "Not a directory."),
        Err(e) => replies::fs_error(&e),
    }
}

pub fn pwd(s: &Session) -> Reply {
    Reply::new(
        257,
        format!(
            "{} is the current directory.",
            quote_path(&s.cwd.as_string())
        ),
    )
}
