//! CWD CDUP PWD.

use wharf_ftp::reply::quote_path;
use wharf_ftp::{EntryKind, Reply};

use super::{permitted, resolve};
use crate::replies;
use crate::state::{LoggedIn, Navigation};

pub async fn cwd(login: &LoggedIn, nav: &mut Navigation, arg: &str) -> Reply {
    let target = match resolve(nav, arg) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let fs = match permitted(login, |p| p.list || p.read || p.write) {
        Ok(fs) => fs,
        Err(r) => return r,
    };
    match fs.metadata(&target).await {
        Ok(e) if matches!(e.kind, EntryKind::Dir) => {
            let reply = Reply::new(250, format!("Directory changed to {target}."));
            nav.cwd = target;
            reply
        }
        Ok(_) => Reply::new(550, "Not a directory."),
        Err(e) => replies::fs_error(&e),
    }
}

pub fn pwd(nav: &Navigation) -> Reply {
    Reply::new(
        257,
        format!(
            "{} is the current directory.",
            quote_path(&nav.cwd.as_string())
        ),
    )
}
